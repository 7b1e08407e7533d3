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
  // Members in declaration order, both expanded from kernels.def: no slot can be missed or misplaced. A kernel
  // declared there but not defined in this ISA build leaves an undefined symbol, so the addon fails to load
  // (native/build.mjs loads it once after building and reports that).
  static const Kernels table = {
      CR_STR(CR_ISA_NS),
#define CR_KERNEL(name, js, params, serves, meta) K::name,
#include "../kernels.def"
  };
  return &table;
}

}  // namespace cr
