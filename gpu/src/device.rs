//! Adapters, the device and the buffers kernels read and write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::kernels::Kernels;
use crate::{GpuError, Real};

/// Which adapter [`Gpu::open`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The first of the kinds discrete GPU, integrated GPU, virtual GPU, software (CPU), in
    /// that order of preference.
    Default,
    /// The adapter at this index of [`Gpu::adapters`].
    Index(usize),
    /// The first adapter whose name contains this text (case-insensitive).
    Name(String),
}

impl std::str::FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    /// An index (`"1"`) or a part of a name (`"RTX"`); the empty string is the default.
    ///
    /// # Examples
    /// ```
    /// use netmorph_gpu::AdapterChoice;
    /// assert_eq!("1".parse(), Ok(AdapterChoice::Index(1)));
    /// assert_eq!("llvmpipe".parse(), Ok(AdapterChoice::Name("llvmpipe".into())));
    /// assert_eq!("".parse(), Ok(AdapterChoice::Default));
    /// ```
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(if text.is_empty() {
            Self::Default
        } else {
            text.parse()
                .map_or_else(|_| Self::Name(text.to_string()), Self::Index)
        })
    }
}

/// One adapter as [`Gpu::adapters`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Its index, for [`AdapterChoice::Index`].
    pub index: usize,
    /// Its name (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Backend, device type and driver, in words.
    pub details: String,
}

/// An open GPU device: its queue, the compiled kernels and the adapter's name. Clones share
/// the device.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    /// The f32 kernels, compiled when the device opens.
    single: Kernels,
    /// The f64 kernels, compiled the first time they are asked for.
    double: Arc<Mutex<Option<Kernels>>>,
    /// Bytes of every storage buffer made so far (never decreases: differences measure
    /// what a piece of work allocated).
    stored: Arc<AtomicU64>,
    name: String,
    backend: wgpu::Backend,
    limits: wgpu::Limits,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn all_adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()))
}

fn summary(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        index,
        name: info.name.clone(),
        details: format!(
            "{:?}, {:?}, driver {} {}",
            info.backend, info.device_type, info.driver, info.driver_info
        ),
    }
}

/// Calls `f` (which creates resources, compiles kernels, or records, submits and waits for
/// work) with the device's validation, out-of-memory and internal errors (a backend that
/// fails to compile a shader) caught: they come back as [`GpuError::Device`] instead of
/// reaching wgpu's default handler, which panics.
fn scoped<T>(device: &wgpu::Device, f: impl FnOnce() -> T) -> Result<T, GpuError> {
    let scopes = [
        wgpu::ErrorFilter::Validation,
        wgpu::ErrorFilter::OutOfMemory,
        wgpu::ErrorFilter::Internal,
    ]
    .map(|filter| device.push_error_scope(filter));
    let value = f();
    // Scopes pop in reverse order of pushing; every one is popped.
    let mut first = None;
    for scope in scopes.into_iter().rev() {
        if let Some(e) = pollster::block_on(scope.pop()) {
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) => Err(GpuError::Device(e.to_string())),
        None => Ok(value),
    }
}

/// Compiles the kernels in `T`.
fn compile<T: Real>(device: &wgpu::Device) -> Result<Kernels, GpuError> {
    scoped(device, || Kernels::new(device, T::PRELUDE)).map_err(|e| match e {
        GpuError::Device(m) => GpuError::Device(format!("compiling the {} kernels: {m}", T::NAME)),
        other => other,
    })
}

/// Preference of [`AdapterChoice::Default`]: lower is better.
fn rank(adapter: &wgpu::Adapter) -> u8 {
    match adapter.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl Gpu {
    /// Every adapter the installed drivers offer, in a fixed order.
    pub fn adapters() -> Vec<AdapterSummary> {
        all_adapters()
            .iter()
            .enumerate()
            .map(|(i, a)| summary(i, a))
            .collect()
    }

    /// Opens a device on the chosen adapter, with the adapter's own limits (not WebGPU's
    /// smaller defaults), and compiles the kernels.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] when no adapter exists, [`GpuError::AdapterNotFound`] (with
    /// the list) when none matches `choice`, [`GpuError::RequestDevice`] when the adapter
    /// refuses a device, [`GpuError::Device`] when it cannot compile the kernels.
    pub fn open(choice: &AdapterChoice) -> Result<Self, GpuError> {
        let mut adapters = all_adapters();
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let at = match choice {
            AdapterChoice::Default => adapters
                .iter()
                .enumerate()
                .min_by_key(|(i, a)| (rank(a), *i))
                .map(|(i, _)| i),
            AdapterChoice::Index(i) => (*i < adapters.len()).then_some(*i),
            AdapterChoice::Name(part) => {
                let part = part.to_lowercase();
                adapters
                    .iter()
                    .position(|a| a.get_info().name.to_lowercase().contains(&part))
            }
        };
        let Some(at) = at else {
            let available = adapters
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let s = summary(i, a);
                    format!("  {}: {} ({})", s.index, s.name, s.details)
                })
                .collect::<Vec<_>>()
                .join("\n");
            let wanted = match choice {
                AdapterChoice::Default => "the default".to_string(),
                AdapterChoice::Index(i) => format!("index {i}"),
                AdapterChoice::Name(n) => n.clone(),
            };
            return Err(GpuError::AdapterNotFound { wanted, available });
        };
        let adapter = adapters.swap_remove(at);
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("netmorph"),
            // f64 kernels where the adapter has them; nothing else beyond WebGPU's core.
            required_features: adapter.features() & f64::FEATURES,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        let single = compile::<f32>(&device)?;
        Ok(Self {
            device,
            queue,
            single,
            double: Arc::default(),
            stored: Arc::default(),
            name: adapter.get_info().name,
            backend: adapter.get_info().backend,
            limits,
        })
    }

    /// Whether the device runs kernels in `T`: f32 always; f64 on Vulkan adapters with
    /// [`wgpu::Features::SHADER_F64`]. DX12's HLSL has no f64 `round` and `ldexp`, which
    /// the f64 kernels' exponential needs, and Metal has no f64 at all.
    pub fn supports<T: Real>(&self) -> bool {
        T::FEATURES.is_empty()
            || (self.backend == wgpu::Backend::Vulkan
                && self.device.features().contains(T::FEATURES))
    }

    /// The kernels in `T`, compiled on first use for f64.
    ///
    /// # Errors
    /// [`GpuError::Unsupported`] when the adapter does not run `T`; [`GpuError::Device`]
    /// when it cannot compile the kernels.
    pub(crate) fn kernels<T: Real>(&self) -> Result<Kernels, GpuError> {
        if T::FEATURES.is_empty() {
            return Ok(self.single.clone());
        }
        if !self.supports::<T>() {
            return Err(GpuError::Unsupported(format!(
                "{} has no {} kernels (they need a Vulkan adapter with {:?}); use f32 or \
                 the CPU",
                self.name,
                T::NAME,
                T::FEATURES
            )));
        }
        let mut double = self
            .double
            .lock()
            .map_err(|_| GpuError::Device("a thread compiling the f64 kernels panicked".into()))?;
        if let Some(k) = double.as_ref() {
            return Ok(k.clone());
        }
        let k = compile::<T>(&self.device)?;
        *double = Some(k.clone());
        Ok(k)
    }

    /// Bytes of every storage buffer this device has made so far (freed ones included).
    pub(crate) fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// The adapter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that a storage buffer of `len` values of `T` fits the adapter's limits;
    /// returns its size in bytes.
    pub(crate) fn check_len<T>(&self, what: &str, len: usize) -> Result<u64, GpuError> {
        let bytes = u64::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(size_of::<T>() as u64))
            // The shaders index with 32-bit integers.
            .filter(|b| {
                len <= u32::MAX as usize
                    && *b <= self.limits.max_buffer_size
                    && *b <= self.limits.max_storage_buffer_binding_size
            })
            .ok_or_else(|| {
                GpuError::Shape(format!(
                    "{what}: {len} values do not fit one storage buffer of this adapter \
                     ({} bytes and 2^32 values at most)",
                    self.limits.max_storage_buffer_binding_size
                ))
            })?;
        Ok(bytes.max(size_of::<T>() as u64))
    }

    /// A storage buffer holding `data` (kernels read it; it can be copied from).
    pub(crate) fn upload<T: bytemuck::Pod>(
        &self,
        what: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer, GpuError> {
        self.check_len::<T>(what, data.len())?;
        // A zero-sized binding is invalid: an empty input gets one unused value.
        let zero = [T::zeroed()];
        let data: &[T] = if data.is_empty() { &zero } else { data };
        self.stored
            .fetch_add(size_of_val(data) as u64, Ordering::Relaxed);
        self.scoped(|| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(what),
                    contents: bytemuck::cast_slice(data),
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                })
        })
    }

    /// An output buffer of `len` values, every one NaN, so that a value a kernel fails to
    /// write shows up in the result instead of passing as a stale or zero value.
    pub(crate) fn poisoned<T: Real>(
        &self,
        what: &str,
        len: usize,
    ) -> Result<wgpu::Buffer, GpuError> {
        self.check_len::<T>(what, len)?;
        self.upload(what, &vec![T::nan(); len])
    }

    /// [`scoped`] on this device.
    pub(crate) fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        scoped(&self.device, f)
    }

    /// Submits the commands `record` encodes, without waiting for them.
    pub(crate) fn submit(
        &self,
        record: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<(), GpuError> {
        self.scoped(|| {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            record(&mut encoder);
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Runs the commands `record` encodes and waits for them.
    pub(crate) fn run(
        &self,
        record: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<(), GpuError> {
        self.submit(record)?;
        self.wait()
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device(e.to_string()))
    }

    /// Copies the first `len` values of `buffer` back to the host.
    pub(crate) fn download<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<T>, GpuError> {
        let bytes = self.check_len::<T>("download", len)?;
        let staging = self.scoped(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.run(|e| e.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes))?;
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            // The receiver waits below; a failed send means it is gone, nothing to tell.
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Device(e.to_string()))?
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let values = bytemuck::cast_slice::<u8, T>(&view)[..len].to_vec();
        drop(view);
        staging.unmap();
        Ok(values)
    }
}
