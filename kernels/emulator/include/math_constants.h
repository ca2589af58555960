// Stand-in for CUDA's math_constants.h when the kernels are compiled for the CPU emulator.
#pragma once
#include <limits>
#define CUDART_INF_F std::numeric_limits<float>::infinity()
#define CUDART_INF std::numeric_limits<double>::infinity()
