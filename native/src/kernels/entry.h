// The kernel entry points each ISA build defines (in cr::CR_ISA_NS), one per CR_KERNEL of kernels.def,
// collected into a table by table.cc.
#pragma once

#include "isa.h"

namespace cr {
namespace CR_ISA_NS {

#define CR_KERNEL(name, js, params, serves, meta) Err name params;
#include "../kernels.def"

}  // namespace CR_ISA_NS
}  // namespace cr
