//! Every kernel but the matrix product: convolution's im2col and col2im, pooling,
//! P-activations, the loss and its metrics, SGD and layout changes. They share one bind group
//! layout (`shaders/common.wgsl`): 16 integer parameters, up to four storage buffers and the
//! training step's uniform values. A [`Dispatch`] is one kernel bound to its buffers, made
//! once when a network is placed on the GPU and recorded again at every step.

use wgpu::util::DeviceExt;

use crate::matmul::{entry, Bind};
use crate::{Gpu, GpuError, Real};

/// Invocations per workgroup, as in the shaders.
pub(crate) const WG: usize = 256;

/// One kernel: its module and entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Im2col,
    Col2im,
    MaxForward,
    MaxBackward,
    AvgForward,
    AvgBackward,
    ActForward,
    ActBackward,
    ActDa,
    Softmax,
    Metrics,
    Sgd,
    Flatten,
    Unflatten,
    Add,
    Accumulate,
    SumSplits,
}

impl Op {
    const ALL: [Self; 17] = [
        Self::Im2col,
        Self::Col2im,
        Self::MaxForward,
        Self::MaxBackward,
        Self::AvgForward,
        Self::AvgBackward,
        Self::ActForward,
        Self::ActBackward,
        Self::ActDa,
        Self::Softmax,
        Self::Metrics,
        Self::Sgd,
        Self::Flatten,
        Self::Unflatten,
        Self::Add,
        Self::Accumulate,
        Self::SumSplits,
    ];

    /// (module, entry point).
    fn entry(self) -> (Module, &'static str) {
        match self {
            Self::Im2col => (Module::Conv, "im2col"),
            Self::Col2im => (Module::Conv, "col2im"),
            Self::MaxForward => (Module::Pool, "max_forward"),
            Self::MaxBackward => (Module::Pool, "max_backward"),
            Self::AvgForward => (Module::Pool, "avg_forward"),
            Self::AvgBackward => (Module::Pool, "avg_backward"),
            Self::ActForward => (Module::Act, "forward"),
            Self::ActBackward => (Module::Act, "backward"),
            Self::ActDa => (Module::Act, "da"),
            Self::Softmax => (Module::Loss, "softmax"),
            Self::Metrics => (Module::Metrics, "sum"),
            Self::Sgd => (Module::Sgd, "update"),
            Self::Flatten => (Module::Layout, "flatten"),
            Self::Unflatten => (Module::Layout, "unflatten"),
            Self::Add => (Module::Layout, "add"),
            Self::Accumulate => (Module::Layout, "accumulate"),
            Self::SumSplits => (Module::Layout, "sum_splits"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Module {
    Conv,
    Pool,
    Act,
    Loss,
    Metrics,
    Sgd,
    Layout,
}

impl Module {
    const ALL: [Self; 7] = [
        Self::Conv,
        Self::Pool,
        Self::Act,
        Self::Loss,
        Self::Metrics,
        Self::Sgd,
        Self::Layout,
    ];

    fn body(self) -> &'static str {
        match self {
            Self::Conv => include_str!("shaders/conv.wgsl"),
            Self::Pool => include_str!("shaders/pool.wgsl"),
            Self::Act => concat!(
                include_str!("shaders/phi.wgsl"),
                "\n",
                include_str!("shaders/act.wgsl")
            ),
            Self::Loss => include_str!("shaders/loss.wgsl"),
            Self::Metrics => include_str!("shaders/metrics.wgsl"),
            Self::Sgd => include_str!("shaders/sgd.wgsl"),
            Self::Layout => concat!(
                include_str!("shaders/phi.wgsl"),
                "\n",
                include_str!("shaders/layout.wgsl")
            ),
        }
    }
}

/// How many invocations a dispatch runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Threads {
    /// One per value of a range of this length.
    Each(usize),
    /// This many whole workgroups (one per channel, or one for a reduction).
    Groups(usize),
}

/// The kernels compiled for one scalar type, their layout, the matrix product (its own
/// layout), and four small buffers that stand in for the storage bindings a kernel does not
/// use (distinct, so no buffer is bound twice).
#[derive(Clone)]
pub(crate) struct Kernels {
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::ComputePipeline>,
    pub(crate) matmul: wgpu::ComputePipeline,
    pub(crate) spare: [wgpu::Buffer; 4],
}

/// A kernel bound to its buffers, ready to record.
pub(crate) struct Dispatch {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) bind: wgpu::BindGroup,
    pub(crate) groups: (u32, u32, u32),
}

/// One command of a recorded sequence: a kernel, or a whole-buffer copy (a gradient handed
/// to every branch of a parallel block).
pub(crate) enum Command {
    Run(Dispatch),
    Copy {
        from: wgpu::Buffer,
        to: wgpu::Buffer,
        bytes: u64,
    },
}

impl Kernels {
    /// Compiles every kernel for the scalar type whose WGSL prelude is `prelude`.
    pub(crate) fn new(device: &wgpu::Device, prelude: &str) -> Self {
        let storage = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: false },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let uniform = |binding| wgpu::BindGroupLayoutEntry {
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            ..storage(binding)
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("kernels"),
            entries: &[
                uniform(0),
                storage(1),
                storage(2),
                storage(3),
                storage(4),
                uniform(5),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("kernels"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let modules: Vec<wgpu::ShaderModule> = Module::ALL
            .iter()
            .map(|m| {
                let source = format!(
                    "{prelude}\n{}\n{}",
                    include_str!("shaders/common.wgsl"),
                    m.body()
                );
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: None,
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
            })
            .collect();
        let pipelines = Op::ALL
            .iter()
            .map(|op| {
                let (module, entry_point) = op.entry();
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry_point),
                    layout: Some(&pipeline_layout),
                    module: &modules[module as usize],
                    entry_point: Some(entry_point),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    cache: None,
                })
            })
            .collect();
        let matmul = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("matmul"),
            source: wgpu::ShaderSource::Wgsl(
                format!(
                    "{prelude}\n{}\n{}",
                    include_str!("shaders/phi.wgsl"),
                    include_str!("shaders/matmul.wgsl")
                )
                .into(),
            ),
        });
        let matmul = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("matmul"),
            layout: None,
            module: &matmul,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        let spare = [0, 1, 2, 3].map(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("unused binding"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        });
        Self {
            layout,
            pipelines,
            matmul,
            spare,
        }
    }
}

impl Gpu {
    /// Workgroups for `threads`, as a 2-D grid within the adapter's per-dimension limit.
    ///
    /// # Errors
    /// [`GpuError::Shape`] when even the 2-D grid is too large.
    pub(crate) fn grid(&self, threads: Threads) -> Result<(u32, u32), GpuError> {
        let groups = match threads {
            Threads::Each(n) => n.div_ceil(WG),
            Threads::Groups(g) => g,
        };
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let y = if x == 0 { 0 } else { groups.div_ceil(x) };
        match (u32::try_from(x), u32::try_from(y)) {
            (Ok(x), Ok(y)) if y as usize <= max => Ok((x, y)),
            _ => Err(GpuError::Shape(format!(
                "{groups} workgroups exceed this adapter's grid"
            ))),
        }
    }

    /// `op` in `T`, bound to `buffers` (bindings 1, 2, ... in order), its parameters and
    /// the step's uniform values, over `threads`.
    ///
    /// # Errors
    /// [`GpuError::Shape`] for a grid the adapter cannot run; [`GpuError::Device`] when the
    /// GPU refuses the resources; [`GpuError::Unsupported`] for f64 on an adapter without it.
    pub(crate) fn dispatch<T: Real>(
        &self,
        op: Op,
        params: &[u32],
        buffers: &[&dyn Bind],
        step: &wgpu::Buffer,
        threads: Threads,
    ) -> Result<Dispatch, GpuError> {
        let (x, y) = self.grid(threads)?;
        let mut block = [0u32; 16];
        block[..params.len()].copy_from_slice(params);
        let k = &self.kernels::<T>()?;
        let pipeline = k.pipelines[op as usize].clone();
        let storage: Vec<&dyn Bind> = (0..4)
            .map(|i| buffers.get(i).copied().unwrap_or(&k.spare[i]))
            .collect();
        let bind = self.scoped(|| {
            let uniform = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("parameters"),
                    contents: bytemuck::cast_slice(&block),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &k.layout,
                entries: &[
                    entry(0, &uniform),
                    entry(1, storage[0]),
                    entry(2, storage[1]),
                    entry(3, storage[2]),
                    entry(4, storage[3]),
                    entry(5, step),
                ],
            })
        })?;
        Ok(Dispatch {
            pipeline,
            bind,
            groups: (x, y, 1),
        })
    }

    /// Records `commands` in order: runs of kernels as compute passes, copies between them.
    pub(crate) fn record(encoder: &mut wgpu::CommandEncoder, commands: &[Command]) {
        let mut at = 0;
        while at < commands.len() {
            let kernels = commands[at..]
                .iter()
                .take_while(|c| matches!(c, Command::Run(_)))
                .count();
            if kernels > 0 {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                // wgpu places a barrier between a dispatch that writes a buffer and the
                // next that uses it.
                for c in &commands[at..at + kernels] {
                    if let Command::Run(d) = c {
                        let (x, y, z) = d.groups;
                        if x > 0 && y > 0 && z > 0 {
                            pass.set_pipeline(&d.pipeline);
                            pass.set_bind_group(0, &d.bind, &[]);
                            pass.dispatch_workgroups(x, y, z);
                        }
                    }
                }
                at += kernels;
            } else {
                if let Command::Copy { from, to, bytes } = &commands[at] {
                    encoder.copy_buffer_to_buffer(from, 0, to, 0, *bytes);
                }
                at += 1;
            }
        }
    }
}
