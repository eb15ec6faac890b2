// Launch glue between the ctypes loader (loader.py) and the kernels.
//
// WGF_EXPORT(i, expr) defines, for the kernel instance `expr` (a name
// expression as gpu.py writes it for NVRTC):
//   int wgf_launch_i(void** params, unsigned grid_x, unsigned grid_y, unsigned block,
//                    long long block_begin, long long block_end)
//     params: pointers to the arguments, as cuLaunchKernel takes them;
//   const char* wgf_signature_i()
//     one letter per parameter (p pointer, i int, f float, d double) so that
//     the loader checks the host's arguments against the kernel's.
#pragma once

#include <type_traits>
#include <utility>

namespace wgf_emu {

template <typename A>
constexpr char code() {
  if constexpr (std::is_pointer_v<A>) return 'p';
  else if constexpr (std::is_same_v<A, int>) return 'i';
  else if constexpr (std::is_same_v<A, float>) return 'f';
  else if constexpr (std::is_same_v<A, double>) return 'd';
  else return '?';
}

template <typename... A>
struct Signature {
  static constexpr char value[sizeof...(A) + 1] = {code<A>()..., '\0'};
};

template <typename... A>
struct Call {
  void (*kernel)(A...);
  void** params;
  template <size_t... I>
  void run(std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(params[I])...);
  }
  static void body(void* self) { static_cast<Call*>(self)->run(std::index_sequence_for<A...>{}); }
};

template <typename... A>
int run(void (*kernel)(A...), void** params, unsigned gx, unsigned gy, unsigned block, long long b0, long long b1) {
  Call<A...> call{kernel, params};
  return launch(&Call<A...>::body, &call, gx, gy, block, b0, b1);
}

template <typename... A>
const char* signature(void (*)(A...)) {
  return Signature<A...>::value;
}

}  // namespace wgf_emu

#define WGF_EXPORT(i, ...)                                                                              \
  extern "C" int wgf_launch_##i(void** params, unsigned gx, unsigned gy, unsigned block, long long b0, \
                                long long b1) {                                                         \
    return wgf_emu::run(&__VA_ARGS__, params, gx, gy, block, b0, b1);                                   \
  }                                                                                                     \
  extern "C" const char* wgf_signature_##i() { return wgf_emu::signature(&__VA_ARGS__); }
