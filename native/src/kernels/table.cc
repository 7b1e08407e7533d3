// The kernel table of one ISA build (kernels_avx512 / kernels_avx2 / kernels_base, chosen at run time by
// addon.cc with __builtin_cpu_supports).
#include "entry.h"

#define CR_CAT2(a, b) a##b
#define CR_CAT(a, b) CR_CAT2(a, b)
#define CR_STR2(a) #a
#define CR_STR(a) CR_STR2(a)

namespace cr {

const Kernels* CR_CAT(kernels_, CR_ISA_NS)() {
  namespace K = CR_ISA_NS;
  static const Kernels table = {
      CR_STR(CR_ISA_NS), K::unary,  K::binary, K::where,  K::cast,   K::copy,   K::reduce,
      K::arg_reduce,     K::cumsum, K::dot,    K::conv2d, K::pool2d, K::max_pool2d_backward,
      K::gather,         K::scatter_add, K::adam, K::activation,
      K::softmax,        K::softmax_backward,
  };
  return &table;
}

}  // namespace cr
