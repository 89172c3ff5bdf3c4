//! The tiled matrix product the dense and convolution layers are built on.

use wgpu::util::DeviceExt;

use crate::kernels::{Command, Dispatch};
use crate::{Gpu, GpuError, Real};

/// Sizes and strides of `C = A B`: `A` is `m x k` with element `(i, p)` at
/// `i * a_row + p * a_col`, `B` is `k x n` with `(p, j)` at `p * b_row + j * b_col`, and `C`
/// is `m x n`, row-major. Transposed operands are just other strides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// `A`'s row stride.
    pub a_row: usize,
    /// `A`'s column stride.
    pub a_col: usize,
    /// `B`'s row stride.
    pub b_row: usize,
    /// `B`'s column stride.
    pub b_col: usize,
}

impl Product {
    /// Both operands dense and row-major.
    pub const fn row_major(m: usize, k: usize, n: usize) -> Self {
        Self {
            m,
            k,
            n,
            a_row: k,
            a_col: 1,
            b_row: n,
            b_col: 1,
        }
    }

    /// The values `C` has (`m * n`), or `None` when that overflows.
    pub fn out_len(&self) -> Option<usize> {
        self.m.checked_mul(self.n)
    }

    /// Checks the operands' lengths against the strides, and that every index fits the
    /// shader's 32-bit arithmetic; returns the shader's uniform block.
    fn dims(&self, a: usize, b: usize, bias: Option<(usize, Axis)>) -> Result<[u32; 8], GpuError> {
        // One past the last element a stride pattern reads.
        let reach = |rows: usize, cols: usize, rs: usize, cs: usize| -> Option<usize> {
            if rows == 0 || cols == 0 {
                return Some(0);
            }
            (rows - 1)
                .checked_mul(rs)?
                .checked_add((cols - 1).checked_mul(cs)?)?
                .checked_add(1)
        };
        let bad = |e: String| GpuError::Shape(e);
        let need_a = reach(self.m, self.k, self.a_row, self.a_col)
            .ok_or_else(|| bad(format!("{self:?}: A's indices overflow")))?;
        let need_b = reach(self.k, self.n, self.b_row, self.b_col)
            .ok_or_else(|| bad(format!("{self:?}: B's indices overflow")))?;
        let out = self
            .out_len()
            .ok_or_else(|| bad(format!("{self:?}: C's size overflows")))?;
        if a < need_a || b < need_b {
            return Err(bad(format!(
                "{self:?} reads {need_a} values of A and {need_b} of B; given {a} and {b}"
            )));
        }
        match bias {
            Some((len, Axis::Columns)) if len != self.n => {
                return Err(bad(format!(
                    "a bias of {len} values for {} columns",
                    self.n
                )));
            }
            Some((len, Axis::Rows)) if len != self.m => {
                return Err(bad(format!("a bias of {len} values for {} rows", self.m)));
            }
            _ => {}
        }
        // The shader rounds k up to whole 16-wide slabs.
        let slabs = self
            .k
            .checked_add(SLAB - 1)
            .ok_or_else(|| bad(format!("{self:?}: k overflows")))?;
        let max = need_a.max(need_b).max(out).max(slabs);
        let u = |v: usize| {
            u32::try_from(v).map_err(|_| bad(format!("{self:?}: {max} exceeds 32-bit indices")))
        };
        // Indices the shader computes stay below `max`; the strides themselves too.
        u(max)?;
        Ok([
            u(self.m)?,
            u(self.n)?,
            u(self.k)?,
            u(self.a_row)?,
            u(self.a_col)?,
            u(self.b_row)?,
            u(self.b_col)?,
            match bias {
                None => 0,
                Some((_, Axis::Columns)) => 1,
                Some((_, Axis::Rows)) => 2,
            },
        ])
    }
}

/// What a bias is added along: one value per column of `C` (a dense layer on row-major
/// samples) or per row (a layer on channel-major activations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Axis {
    Columns,
    Rows,
}

/// Operands of one product (whole buffers or regions of one), with their lengths in
/// values. With `splits > 1`, `c` holds `splits` partial products of `m x n`, block after
/// block (their sum is `C`).
#[derive(Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub a: (&'a dyn Bind, usize),
    pub b: (&'a dyn Bind, usize),
    pub bias: Option<(&'a dyn Bind, usize, Axis)>,
    pub c: (&'a dyn Bind, usize),
    pub splits: usize,
    /// A P-activation of `C` written in the same pass (only with `splits` 1).
    pub act: Option<Fused<'a>>,
}

/// A P-activation fused into a product: `y = (1 - a) phi(C) + a C` with one `a` per row of
/// `C` (a channel, on channel-major activations).
#[derive(Clone, Copy)]
pub(crate) struct Fused<'a> {
    /// phi's kind, as in `shaders/phi.wgsl`.
    pub kind: u32,
    /// `a`: `m` values.
    pub a: (&'a dyn Bind, usize),
    /// The output: `m x n` values.
    pub y: (&'a dyn Bind, usize),
}

impl Fused<'_> {
    /// Checks the lengths of `a` and the output against `p`.
    pub(crate) fn check(&self, p: &Product) -> Result<(), GpuError> {
        if self.a.1 != p.m || Some(self.y.1) != p.out_len() {
            return Err(GpuError::Shape(format!(
                "{p:?} with an activation of {} values of a into {}",
                self.a.1, self.y.1
            )));
        }
        Ok(())
    }
}

/// How many parts to split `p`'s k into so that about 128 workgroups run (enough to fill a
/// large GPU): no more parts than 256-long pieces of k (so parts are about 256 long or
/// more), and at most 64; 1 when the output alone has enough tiles or k is short.
pub(crate) fn splits(p: &Product) -> usize {
    const WANT: usize = 128;
    let tiles = p.m.div_ceil(TILE).saturating_mul(p.n.div_ceil(TILE)).max(1);
    WANT.div_ceil(tiles).min(p.k.div_ceil(256)).clamp(1, 64)
}

/// Output tile edge, as in the shader.
const TILE: usize = 64;

/// Width of the slabs of k staged in workgroup memory, as in the shader.
const SLAB: usize = 16;

impl Gpu {
    /// `C = A B (+ bias)` on buffers already on the GPU, bound and ready to record.
    ///
    /// # Errors
    /// [`GpuError::Shape`] when the buffers are too short for `p`, `C` is not `m * n` times
    /// `ops.splits`, or the grid exceeds the adapter's dispatch limit; [`GpuError::Device`]
    /// when the GPU refuses the resources; [`GpuError::Unsupported`] for f64 on an adapter
    /// without it.
    pub(crate) fn matmul_dispatch<T: Real>(
        &self,
        p: &Product,
        ops: &Operands<'_>,
    ) -> Result<Dispatch, GpuError> {
        let dims = p.dims(ops.a.1, ops.b.1, ops.bias.map(|b| (b.1, b.2)))?;
        let splits = ops.splits.max(1);
        let written = p.out_len().and_then(|n| n.checked_mul(splits));
        if Some(ops.c.1) != written {
            return Err(GpuError::Shape(format!(
                "{p:?} in {splits} parts writes {written:?} values into a buffer of {}",
                ops.c.1
            )));
        }
        // Slabs per part; the shader's indices stay below the buffer's length, checked
        // against the adapter's limits when it was made.
        let split_slabs = p.k.div_ceil(SLAB).div_ceil(splits).max(1);
        let mut block = [0u32; 12];
        block[..8].copy_from_slice(&dims);
        if let Some(f) = &ops.act {
            if splits != 1 {
                return Err(GpuError::Shape(format!(
                    "{p:?} in {splits} parts: its activation belongs to the sum of the parts"
                )));
            }
            f.check(p)?;
            block[9] = f.kind + 1;
        }
        block[8] = u32::try_from(split_slabs)
            .map_err(|_| GpuError::Shape(format!("{p:?}: k exceeds 32-bit indices")))?;
        let groups = |v: usize| {
            u32::try_from(v.div_ceil(TILE))
                .ok()
                .filter(|g| *g <= self.device.limits().max_compute_workgroups_per_dimension)
                .ok_or_else(|| {
                    GpuError::Shape(format!("{p:?}: more workgroups than the adapter allows"))
                })
        };
        let z = u32::try_from(splits)
            .ok()
            .filter(|z| *z <= self.device.limits().max_compute_workgroups_per_dimension)
            .ok_or_else(|| GpuError::Shape(format!("{p:?}: {splits} parts are too many")))?;
        let groups = (groups(p.n)?, groups(p.m)?, z);
        // Without a bias the shader never reads binding 3; A stands in for it.
        let bias: &dyn Bind = ops.bias.map_or(ops.a.0, |b| b.0);
        // Without an activation, spare buffers stand in for its bindings.
        let kernels = self.kernels::<T>()?;
        let (act_a, act_y): (&dyn Bind, &dyn Bind) = match &ops.act {
            Some(f) => (f.a.0, f.y.0),
            None => (&kernels.spare[0], &kernels.spare[1]),
        };
        let pipeline = kernels.matmul.clone();
        let layout = pipeline.get_bind_group_layout(0);
        let bind = self.scoped(|| {
            let uniform = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("matmul dims"),
                    contents: bytemuck::cast_slice(&block),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("matmul"),
                layout: &layout,
                entries: &[
                    entry(0, &uniform),
                    entry(1, ops.a.0),
                    entry(2, ops.b.0),
                    entry(3, bias),
                    entry(4, ops.c.0),
                    entry(5, act_a),
                    entry(6, act_y),
                ],
            })
        })?;
        Ok(Dispatch {
            pipeline,
            bind,
            groups,
        })
    }

    /// `C = A B (+ bias)` on host slices: uploads, runs and reads `C` back (`m * n` values,
    /// row-major).
    ///
    /// # Errors
    /// [`GpuError::Shape`] when the slices are too short for `p` or too large for the
    /// adapter; [`GpuError::Device`] when the GPU fails; [`GpuError::Unsupported`] for f64
    /// on an adapter without it ([`Gpu::supports`]).
    pub fn matmul<T: Real>(
        &self,
        p: &Product,
        a: &[T],
        b: &[T],
        bias: Option<&[T]>,
    ) -> Result<Vec<T>, GpuError> {
        let out = p
            .out_len()
            .ok_or_else(|| GpuError::Shape(format!("{p:?}: C's size overflows")))?;
        p.dims(a.len(), b.len(), bias.map(|v| (v.len(), Axis::Columns)))?;
        let (ab, bb) = (self.upload("A", a)?, self.upload("B", b)?);
        let biasb = bias.map(|v| self.upload("bias", v)).transpose()?;
        let cb = self.poisoned::<T>("C", out)?;
        let ops = Operands {
            a: (&ab, a.len()),
            b: (&bb, b.len()),
            bias: biasb
                .as_ref()
                .zip(bias)
                .map(|(b, v)| (b as &dyn Bind, v.len(), Axis::Columns)),
            c: (&cb, out),
            splits: 1,
            act: None,
        };
        let dispatch = self.matmul_dispatch::<T>(p, &ops)?;
        self.run(|e| Gpu::record(e, &[Command::Run(dispatch)]))?;
        self.download(&cb, out)
    }
}

/// What a kernel binds: a whole buffer, or a [`Region`] of one.
pub(crate) trait Bind {
    fn binding(&self) -> wgpu::BufferBinding<'_>;
}

impl Bind for wgpu::Buffer {
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        self.as_entire_buffer_binding()
    }
}

/// `bytes` bytes of a buffer from byte `offset` on (a multiple of the adapter's storage
/// offset alignment).
#[derive(Clone, Debug)]
pub(crate) struct Region {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub bytes: u64,
}

impl Bind for Region {
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.bytes),
        }
    }
}

/// A binding of `what` at `binding`.
pub(crate) fn entry(binding: u32, what: &dyn Bind) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(what.binding()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_products_with_few_tiles_are_split() {
        // The weight gradient of the training tests' first convolution: 4 x 27 outputs
        // summed over 600 pixels; it runs in 3 parts of at least 256.
        assert_eq!(splits(&Product::row_major(4, 600, 27)), 3);
        // cifar10_quick's first convolution at batch 100: 32 x 75 over 102,400 pixels, two
        // 64 x 64 tiles.
        assert_eq!(splits(&Product::row_major(32, 102_400, 75)), 64);
        // A bias gradient: one column, as many parts as allowed.
        assert_eq!(splits(&Product::row_major(32, 102_400, 1)), 64);
        // A 256 x 256 output has 16 tiles: 8 parts.
        assert_eq!(splits(&Product::row_major(256, 4096, 256)), 8);
        // Enough tiles, or a short k: not split.
        assert_eq!(splits(&Product::row_major(1024, 4096, 1024)), 1);
        assert_eq!(splits(&Product::row_major(4, 200, 4)), 1);
    }
}
