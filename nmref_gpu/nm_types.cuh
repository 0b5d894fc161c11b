// Fixed-width integer types for both nvcc and NVRTC (NVRTC, used by CuPy, ships no <stdint.h>).
#pragma once
#if defined(__CUDACC_RTC__)
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
#else
#include <stdint.h>
#endif
