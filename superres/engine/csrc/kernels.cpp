// The engine's C++ kernels, built as one extension by superres/engine/kernels.py. The kernels' files
// are included here rather than compiled apart: the torch headers they share then cost one compile.
#include <torch/extension.h>

#include "amx.cpp"
#include "winograd.cpp"
#include "compact.cpp"
#include "dense.cpp"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
    using release_gil = pybind11::call_guard<pybind11::gil_scoped_release>;
    module.def("conv3x3", &conv3x3, "Winograd F(4x4, 3x3) convolution of channels-last float32 rows", release_gil());
    module.def("amx_available", &amx_available, "whether this build and this CPU run conv3x3_amx");
    module.def("conv3x3_amx", &conv3x3_amx, "3x3 convolution of channels-last bfloat16 rows on AMX tiles", release_gil());
    module.def("compact_forward", &compact_forward, "SRVGGNetCompact in lagged stripes of rows, one band per thread",
               release_gil());
    module.def("dense_block_amx", &dense_block_amx, "an RRDB dense block in bf16 on AMX tiles, one band per thread",
               release_gil());
}
