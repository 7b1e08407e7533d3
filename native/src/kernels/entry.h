// The kernel entry points each ISA build defines (in cr::CR_ISA_NS), collected into a table by table.cc.
#pragma once

#include "isa.h"

namespace cr {
namespace CR_ISA_NS {

Err unary(int op, const View& x, const Out& out);
Err binary(int op, const View& a, const View& b, const Out& out);
Err where(const View& c, const View& a, const View& b, const Out& out);
Err cast(const View& x, const Out& out);
Err copy(const View& src, const View& dst);
Err reduce(int op, const View& x, const int* axes, int naxes, const Out& out);
Err arg_reduce(int is_min, const View& x, int axis, const Out& out);
Err cumsum(const View& x, int axis, int reverse, const Out& out);
Err dot(const View& a, const View& b, const Out& out);
Err conv2d(int kind, const View& p, const View& q, const Out& out, const int64_t* shape, const ConvParams& cp,
           const View* bias, int act);
Err pool2d(int kind, const View& x, const Out& out, const int64_t* shape, const PoolParams& pp);
Err max_pool2d_backward(const View& x, const View& dy, const Out& out, const PoolParams& pp);
Err gather(const View& x, int axis, const View& idx, const Out& out, int shared);
Err scatter_add(const View& src, int axis, const View& idx, const Out& out, const int64_t* shape, int shared);
Err adam(const Out& p, const View& g, const Out& m, const Out& v, const Out* vmax, const AdamParams& h);
Err activation(int kind, int act, const View& x, const View* b, const Out& out);
Err softmax(const View& x, int axis, int log, const Out& out);
Err softmax_backward(const View& y, const View& c, int axis, int log, const Out& out);

}  // namespace CR_ISA_NS
}  // namespace cr
