//! The scalar types the kernels run in: f32 on every adapter, f64 on Vulkan adapters with
//! [`wgpu::Features::SHADER_F64`] (for checks against the CPU to f64 precision; GPUs run it
//! far slower than f32). Every shader is written once over the alias `real`, and the
//! type's prelude (`shaders/real_f32.wgsl`, `shaders/real_f64.wgsl`) is prepended: it
//! defines the alias and the exponential, logarithm and tanh, which for f64 are computed
//! from arithmetic because Vulkan's GLSL.std.450 `exp` and `log` are 32-bit only.

use netmorph_core::Scalar;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A scalar type the GPU kernels run in: `f32` or `f64`. Sealed.
pub trait Real: Scalar + bytemuck::Pod + sealed::Sealed {
    /// The WGSL prelude that defines `real` as this type.
    #[doc(hidden)]
    const PRELUDE: &'static str;
    /// The adapter features the kernels need.
    const FEATURES: wgpu::Features;
}

impl Real for f32 {
    const PRELUDE: &'static str = include_str!("shaders/real_f32.wgsl");
    const FEATURES: wgpu::Features = wgpu::Features::empty();
}

impl Real for f64 {
    const PRELUDE: &'static str = include_str!("shaders/real_f64.wgsl");
    const FEATURES: wgpu::Features = wgpu::Features::SHADER_F64;
}
