/**
 * The resampling layers of issue 13 against PyTorch 1.13 in float64: `interpolate` (nearest, nearest-exact,
 * linear, bilinear, bicubic, trilinear; alignCorners; size or scaleFactor, recomputeScaleFactor) and its
 * gradient, and the `Upsample` layers. Inputs are sin(0.37 k + a) over the flat index k (built the same way
 * here); the expected outputs and gradients of sum(y * c) were printed by this script and pasted:
 *
 * import torch, json
 * import torch.nn.functional as F
 * torch.set_default_dtype(torch.float64)
 * def seq(shape, a):  # deterministic inputs: sin(0.37 k + a) for k = 0, 1, ...
 *     n = 1
 *     for s in shape: n *= s
 *     return torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + a).reshape(shape)
 * def fmt(t): return "[" + ", ".join(f"{v:.12g}" for v in t.detach().reshape(-1).tolist()) + "]"
 * def case(name, xs, **kw):
 *     x = seq(xs, 0.1).requires_grad_()
 *     y = F.interpolate(x, **kw)
 *     c = seq(list(y.shape), 2.1)
 *     (y * c).sum().backward()
 *     print(f"  {json.dumps(name)}: {{ shape: {list(y.shape)}, y: {fmt(y)}, gx: {fmt(x.grad)} }},")
 * case("nearest x2", [1, 2, 3, 2], scale_factor=2)
 * case("nearest size 5x3", [1, 2, 4, 7], size=(5, 3))
 * case("nearest scale 1.7", [2, 1, 3, 4], scale_factor=1.7)
 * case("nearest 3d scale 2.1", [1, 2, 3], scale_factor=2.1)
 * case("nearest-exact size 5x7", [1, 1, 3, 4], size=(5, 7), mode="nearest-exact")
 * case("bilinear size 5x7", [2, 1, 3, 4], size=(5, 7), mode="bilinear")
 * case("bilinear align x2", [1, 2, 3, 3], scale_factor=2, mode="bilinear", align_corners=True)
 * case("bilinear scale 1.5x0.6", [1, 1, 4, 5], scale_factor=(1.5, 0.6), mode="bilinear")
 * case("bilinear scale 1.5 recompute", [1, 1, 3, 3], scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)
 * case("bilinear size 1", [1, 1, 3, 4], size=(1, 2), mode="bilinear", align_corners=True)
 * case("linear size 7", [2, 2, 4], size=7, mode="linear")
 * case("linear align size 7", [1, 2, 4], size=7, mode="linear", align_corners=True)
 * case("linear down 3", [1, 1, 8], size=3, mode="linear")
 * case("bicubic size 5x6", [1, 2, 3, 4], size=(5, 6), mode="bicubic")
 * case("bicubic align x2", [1, 1, 3, 3], scale_factor=2, mode="bicubic", align_corners=True)
 * case("trilinear size 3x2x4", [1, 1, 2, 3, 2], size=(3, 2, 4), mode="trilinear")
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as cr from "../src/index.ts";
import { grad, type InterpolateOpts, nn, type Tensor, tensor } from "../src/index.ts";
import { close, seq } from "./torch-ref.ts";

const TORCH: Record<string, { shape: number[]; y: number[]; gx: number[] }> = {
  "nearest x2": {
    shape: [1, 2, 6, 4],
    y: [
      0.0998334166468, 0.0998334166468, 0.452886285379, 0.452886285379, 0.0998334166468, 0.0998334166468,
      0.452886285379, 0.452886285379, 0.744643119971, 0.744643119971, 0.935616001553, 0.935616001553,
      0.744643119971, 0.744643119971, 0.935616001553, 0.935616001553, 0.999957646499, 0.999957646499,
      0.928959715004, 0.928959715004, 0.999957646499, 0.999957646499, 0.928959715004, 0.928959715004,
      0.73223144403, 0.73223144403, 0.43639908216, 0.43639908216, 0.73223144403, 0.73223144403, 0.43639908216,
      0.43639908216, 0.0815021517603, 0.0815021517603, -0.284425712536, -0.284425712536, 0.0815021517603,
      0.0815021517603, -0.284425712536, -0.284425712536, -0.611857890943, -0.611857890943, -0.856477974165,
      -0.856477974165, -0.611857890943, -0.611857890943, -0.856477974165, -0.856477974165,
    ],
    gx: [
      0.337756828398, -1.69506019079, -0.852999085268, 1.24146749926, 1.34019014825, -0.747048684793,
      -1.78330855708, 0.228062894983, 2.16778219716, 0.298422828408, -2.48096750909, -0.815094805497,
    ],
  },
  "nearest size 5x3": {
    shape: [1, 2, 5, 3],
    y: [
      0.0998334166468, 0.744643119971, 0.999957646499, 0.0998334166468, 0.744643119971, 0.999957646499,
      0.43639908216, -0.284425712536, -0.856477974165, -0.843187741856, -0.26015749143, 0.458951486378,
      0.999871708718, 0.727573290971, 0.0747082903895, -0.859975692061, -0.979177729151, -0.586208240712,
      -0.859975692061, -0.979177729151, -0.586208240712, 0.464995373734, 0.94034039141, 0.923828253385,
      0.0679109595764, -0.622581132631, -0.987424142989, -0.580673677365, 0.120153080402, 0.758132221587,
    ],
    gx: [
      0.794855360528, 0, 0.197735585836, 0, -0.42614677278, 0, 0, -0.923998158723, 0, -0.999749377248, 0,
      -0.940189207599, 0, 0, -0.753378839328, 0, -0.464602179414, 0, -0.112943794063, 0, 0, 0.25400100397, 0,
      0.586567957689, 0, 0.839745690049, 0, 0, 1.59615217381, 0, 1.27677797024, 0, 0.784597858031, 0, 0,
      -0.430658284666, 0, -0.72787787035, 0, -0.926582600911, 0, 0, -0.999878723235, 0, -0.937845951012, 0,
      -0.748880128954, 0, 0, -0.458556894597, 0, -0.106170135744, 0, 0.260586252915, 0, 0,
    ],
  },
  "nearest scale 1.7": {
    shape: [2, 1, 5, 6],
    y: [
      0.0998334166468, 0.0998334166468, 0.452886285379, 0.452886285379, 0.744643119971, 0.744643119971,
      0.0998334166468, 0.0998334166468, 0.452886285379, 0.452886285379, 0.744643119971, 0.744643119971,
      0.999957646499, 0.999957646499, 0.928959715004, 0.928959715004, 0.73223144403, 0.73223144403,
      0.999957646499, 0.999957646499, 0.928959715004, 0.928959715004, 0.73223144403, 0.73223144403,
      0.0815021517603, 0.0815021517603, -0.284425712536, -0.284425712536, -0.611857890943, -0.611857890943,
      -0.985177781504, -0.985177781504, -0.980538397794, -0.980538397794, -0.843187741856, -0.843187741856,
      -0.985177781504, -0.985177781504, -0.980538397794, -0.980538397794, -0.843187741856, -0.843187741856,
      -0.26015749143, -0.26015749143, 0.106611693781, 0.106611693781, 0.458951486378, 0.458951486378,
      -0.26015749143, -0.26015749143, 0.106611693781, 0.106611693781, 0.458951486378, 0.458951486378,
      0.937999976775, 0.937999976775, 0.999871708718, 0.999871708718, 0.926415495497, 0.926415495497,
    ],
    gx: [
      -0.438304614003, -1.46488070174, -1.72523206705, 0, 1.74798074813, 1.31320406761, 0.191539082121, 0,
      -1.93772467425, -1.20743702355, 0.154416117171, 0, 1.63755512107, 0.796394580415, -0.461330405116, 0,
      0.149199816282, 1.28473341813, 1.74827065499, 0, -0.531653194372, -1.66877801519, -1.93302699706, 0,
    ],
  },
  "nearest 3d scale 2.1": {
    shape: [1, 2, 6],
    y: [
      0.0998334166468, 0.0998334166468, 0.0998334166468, 0.452886285379, 0.452886285379, 0.744643119971,
      0.935616001553, 0.935616001553, 0.935616001553, 0.999957646499, 0.999957646499, 0.928959715004,
    ],
    gx: [1.48544292197, 0.228687345186, -1.14768609357, -1.92374753597, -1.69356804693, -0.577545973477],
  },
  "nearest-exact size 5x7": {
    shape: [1, 1, 5, 7],
    y: [
      0.0998334166468, 0.0998334166468, 0.452886285379, 0.744643119971, 0.744643119971, 0.935616001553,
      0.935616001553, 0.0998334166468, 0.0998334166468, 0.452886285379, 0.744643119971, 0.744643119971,
      0.935616001553, 0.935616001553, 0.999957646499, 0.999957646499, 0.928959715004, 0.73223144403,
      0.73223144403, 0.43639908216, 0.43639908216, 0.0815021517603, 0.0815021517603, -0.284425712536,
      -0.611857890943, -0.611857890943, -0.856477974165, -0.856477974165, 0.0815021517603, 0.0815021517603,
      -0.284425712536, -0.611857890943, -0.611857890943, -0.856477974165, -0.856477974165,
    ],
    gx: [
      -0.454495662878, -0.456337488021, -1.07039794908, -0.806617321151, 1.81901347274, 0.98625057489,
      1.47663336961, 0.215376274885, -1.00412003784, -0.334509086204, -0.11367278454, 0.633913148906,
    ],
  },
  "bilinear size 5x7": {
    shape: [2, 1, 5, 7],
    y: [
      0.0998334166468, 0.225923726908, 0.427668223327, 0.598764702675, 0.758284040084, 0.867411400988,
      0.935616001553, 0.459883108588, 0.525394733102, 0.630213332326, 0.691497053412, 0.739410648466,
      0.737268239438, 0.735929233796, 0.999957646499, 0.974601242393, 0.934030995825, 0.830595579517,
      0.71110056104, 0.542053497114, 0.43639908216, 0.448884349656, 0.360328674236, 0.218639593564,
      0.0633531507631, -0.0931582280022, -0.244646796392, -0.339327151635, 0.0815021517603, -0.0491863712028,
      -0.258288007944, -0.44814180174, -0.62933075403, -0.769113658728, -0.856477974165, -0.985177781504,
      -0.98352085875, -0.980869782345, -0.911863069825, -0.825225444626, -0.681527066783, -0.591715580631,
      -0.695169665475, -0.641779913935, -0.556356311472, -0.434005205863, -0.303262590454, -0.150706909588,
      -0.0553596090459, -0.26015749143, -0.129168496712, 0.0804138948375, 0.282781590079, 0.479681690803,
      0.645523326205, 0.749174348332, 0.458736989493, 0.524390815654, 0.629436937511, 0.690998797296,
      0.739200164854, 0.737362348892, 0.736213713916, 0.937999976775, 0.960097023897, 0.995452299294,
      0.963143602107, 0.912212480888, 0.798588364016, 0.727573290971,
    ],
    gx: [
      0.289652192054, -0.296716030168, -0.834512857278, -0.974153951343, 0.490627951166, 0.540239933135,
      0.352568961356, 0.0496068905801, -0.475217982936, 0.0923859462007, 0.701163874614, 0.955391583928,
      -0.0795482819237, -0.634484358463, -0.983364021045, -0.899404849778, 0.533847794566, 0.460842343025,
      0.168564394751, -0.152996470755, -0.122364161047, 0.460184109869, 0.919609428279, 0.957271326873,
    ],
  },
  "bilinear align x2": {
    shape: [1, 2, 6, 6],
    y: [
      0.0998334166468, 0.24105456414, 0.382275711633, 0.511237652297, 0.627940386134, 0.744643119971,
      0.434146450609, 0.529173802296, 0.624201153983, 0.701045815458, 0.759707786721, 0.818369757984,
      0.768459484572, 0.817293040453, 0.866126596334, 0.890853978619, 0.891475187308, 0.892096395997,
      0.894939090049, 0.891861827482, 0.888784564915, 0.861690387376, 0.810579294865, 0.759468202355,
      0.81358526704, 0.752880163382, 0.692175059724, 0.613555041728, 0.517020109393, 0.420485177058,
      0.73223144403, 0.613898499282, 0.495565554534, 0.36541969608, 0.22346092392, 0.0815021517603,
      -0.284425712536, -0.415398583899, -0.546371455261, -0.660781907587, -0.758629940876, -0.856477974165,
      -0.564726540123, -0.642567961547, -0.720409382971, -0.777696451195, -0.814429166218, -0.851161881242,
      -0.84502736771, -0.869737339196, -0.894447310681, -0.894610994803, -0.87022839156, -0.845845788318,
      -0.906485341329, -0.878476091406, -0.850466841483, -0.799815344163, -0.726521599446, -0.653227854729,
      -0.74910046098, -0.668784218178, -0.588467975377, -0.493309499275, -0.383308789875, -0.273308080474,
      -0.591715580631, -0.459092344951, -0.326469109271, -0.186803654388, -0.0400959803035, 0.106611693781,
    ],
    gx: [
      0.423604577465, -0.485445287397, -0.987515652755, -0.129649961826, -0.125860063806, -0.0165537108839,
      0.422071183247, 1.30640044777, 1.09549155839, -0.409463357088, -1.29842017942, -1.09882921175,
      -0.0946068397741, -0.0160858539164, 0.0759209210631, 1.02656119551, 1.40334436572, 0.603615161778,
    ],
  },
  "bilinear scale 1.5x0.6": {
    shape: [1, 1, 6, 3],
    y: [
      0.217517706224, 0.744643119971, 0.978510431517, 0.540450665452, 0.590521101065, 0.408030336873,
      0.603920034119, 0.199469604883, -0.283536680448, -0.433934328123, -0.748248304227, -0.767884371158,
      -0.587297068124, -0.439283043861, -0.118268949744, -0.481196217564, 0.106611693781, 0.652433394347,
    ],
    gx: [
      0.552688242392, 0.276344121196, 0.409984570578, -0.0215175702455, -0.0430351404909, -0.619825739034,
      -0.309912869517, -1.12280716235, -0.387969678018, -0.775939356035, -0.436543260384, -0.218271630192,
      -0.260509400208, 0.0563516051239, 0.112703210248, 0.737512189781, 0.36875609489, 1.27953455373,
      0.426540607839, 0.853081215678,
    ],
  },
  "bilinear scale 1.5 recompute": {
    shape: [1, 1, 5, 5],
    y: [
      0.0998334166468, 0.24105456414, 0.452886285379, 0.627940386134, 0.744643119971, 0.434146450609,
      0.529173802296, 0.671714829827, 0.759707786721, 0.818369757984, 0.935616001553, 0.961352659532,
      0.999957646499, 0.957358887602, 0.928959715004, 0.81358526704, 0.752880163382, 0.661822507896,
      0.517020109393, 0.420485177058, 0.73223144403, 0.613898499282, 0.43639908216, 0.22346092392,
      0.0815021517603,
    ],
    gx: [
      0.469997288248, -0.52866142328, -1.25600579149, -0.414996012532, 0.345682125868, 0.928952731115,
      0.609064785311, -0.370172445643, -1.15943346577,
    ],
  },
  "bilinear size 1": {
    shape: [1, 1, 1, 2],
    y: [0.0998334166468, 0.935616001553],
    gx: [0.863209366649, 0, 0, 0.622233555319, 0, 0, 0, 0, 0, 0, 0, 0],
  },
  "linear size 7": {
    shape: [2, 2, 7],
    y: [
      0.0998334166468, 0.225923726908, 0.427668223327, 0.598764702675, 0.758284040084, 0.867411400988,
      0.935616001553, 0.999957646499, 0.974601242393, 0.934030995825, 0.830595579517, 0.71110056104,
      0.542053497114, 0.43639908216, 0.0815021517603, -0.0491863712028, -0.258288007944, -0.44814180174,
      -0.62933075403, -0.769113658728, -0.856477974165, -0.985177781504, -0.98352085875, -0.980869782345,
      -0.911863069825, -0.825225444626, -0.681527066783, -0.591715580631,
    ],
    gx: [
      1.28443389159, 0.463873378624, -0.686635161898, -1.41922609346, -1.65796949923, -1.26764901465,
      -0.246462825634, 0.741786903522, 1.53972144855, 1.69541708832, 1.10645549363, 0.155679661627,
      -0.964764244241, -1.6202938733, -1.63825350504, -1.00696883114,
    ],
  },
  "linear align size 7": {
    shape: [1, 2, 7],
    y: [
      0.0998334166468, 0.276359851013, 0.452886285379, 0.598764702675, 0.744643119971, 0.840129560762,
      0.935616001553, 0.999957646499, 0.964458680751, 0.928959715004, 0.830595579517, 0.73223144403,
      0.584315263095, 0.43639908216,
    ],
    gx: [
      1.17432614431, 0.573981125906, -0.820269034587, -1.28559222077, -1.46984398105, -1.45577453283,
      -0.218244381785, 0.713568459674,
    ],
  },
  "linear down 3": {
    shape: [1, 1, 3],
    y: [0.39404414059, 0.967786824026, 0.682926050385],
    gx: [0.143868227775, 0.719341138874, 0, 0.31111677766, 0.31111677766, 0, 0.247534459422, 0.0495068918845],
  },
  "bicubic size 5x6": {
    shape: [1, 2, 5, 6],
    y: [
      -0.0207592164983, 0.178553794165, 0.485839847626, 0.683433816933, 0.896436302531, 1.00417504326,
      0.497002417495, 0.60962266125, 0.759223943101, 0.824360129573, 0.846270212257, 0.834868544178,
      1.00612066139, 0.982901956155, 0.899698528621, 0.784912883577, 0.565871987691, 0.410719189637,
      0.527153313336, 0.39089816083, 0.156602000518, -0.0253774043682, -0.270254768629, -0.416787067499,
      0.0275527452589, -0.171917042765, -0.479764902478, -0.678133927512, -0.892615421229, -1.00140178481,
      -1.05216470529, -1.08078398973, -1.07507079217, -1.00697266084, -0.833375339025, -0.698934755656,
      -0.804642312927, -0.730159041882, -0.577688048963, -0.430989063768, -0.197184094131, -0.0437040296074,
      -0.291995094313, -0.109804754381, 0.183977990359, 0.389558765139, 0.637094772911, 0.774367305099,
      0.507413103059, 0.618385998362, 0.764963910005, 0.82753080784, 0.845699016647, 0.831952143102,
      1.05019309577, 1.08004256598, 1.07631304851, 1.00960303986, 0.837677130877, 0.704163439213,
    ],
    gx: [
      0.419943084771, -0.246412603156, -0.865211750823, -1.16454540657, 0.237545312808, 0.58634989004,
      0.750528894489, 0.657939788219, -1.01571038193, -1.22416193713, -1.01712625713, -0.485577699152,
      1.15579049668, 1.16692718981, 0.771164817046, 0.142406869189, -0.667804937499, -0.410551912258,
      0.00494790597731, 0.396118118361, 0.519074555131, -0.137256680977, -0.783574241319, -1.13587720098,
    ],
  },
  "bicubic align x2": {
    shape: [1, 1, 6, 6],
    y: [
      0.0998334166468, 0.215811437624, 0.362740324361, 0.538128563666, 0.656861274698, 0.744643119971,
      0.438760747732, 0.529999032025, 0.642281195791, 0.761529846131, 0.8298743145, 0.877174903397,
      0.808043184132, 0.864691728618, 0.929492244442, 0.975686748694, 0.980857320191, 0.977875920349,
      0.98005544758, 0.980887307703, 0.972956582038, 0.923301929239, 0.856020460223, 0.797501576996,
      0.871320998462, 0.822196738254, 0.751581221214, 0.629797432503, 0.515946328406, 0.423586481141,
      0.73223144403, 0.643001066613, 0.522535683168, 0.34553731567, 0.197902230701, 0.0815021517603,
    ],
    gx: [
      0.496868707692, -0.464025101544, -0.905064216779, -0.141489509961, -0.166449934384, -0.00493385264874,
      0.324110191652, 1.42983439698, 0.933692409203,
    ],
  },
  "trilinear size 3x2x4": {
    shape: [1, 1, 3, 2, 4],
    y: [
      0.261035842478, 0.339169060464, 0.495435496436, 0.573568714423, 0.936129014867, 0.93475270781,
      0.932000093698, 0.930623786641, 0.41529248172, 0.415189561029, 0.414983719646, 0.414880798954,
      0.2488055673, 0.21374903521, 0.143635971031, 0.108579438942, 0.569549120963, 0.491210061594,
      0.334531942855, 0.256192883486, -0.438517880267, -0.50725463739, -0.644728151635, -0.713464908758,
    ],
    gx: [
      0.445093447493, -0.0111635047792, -0.0381247437159, -0.252642545132, -0.559467678641, -0.746764130617,
      0.730947349174, 0.482443398062, 0.211603465348, -0.0147595477336, -0.0961369531307, -0.526722041263,
    ],
  },
};

/**
 * Output and gradient against TORCH[name]. `sources` replaces torch's gradient by the transpose of the forward
 * (nearest only: the source position of each output along the last axis, read off torch's forward values).
 */
function check(name: string, xs: number[], opts: InterpolateOpts, sources?: number[]): void {
  const want = TORCH[name];
  const x = seq(xs, 0.1);
  const y = cr.interpolate(x, opts);
  assert.deepEqual(y.shape, want.shape, `${name}: shape`);
  close(y, want.y, `${name}: y`);
  const c = seq(want.shape, 2.1);
  let gx = want.gx;
  if (sources !== undefined) {
    const cd = Array.from(c.dataSync(), Number);
    const n = xs[xs.length - 1];
    gx = gx.map(() => 0);
    cd.forEach((v, k) => {
      const row = Math.floor(k / sources.length);
      gx[row * n + sources[k % sources.length]] += v;
    });
  }
  close(grad((v: Tensor) => cr.interpolate(v, opts).mul(c).sum())(x), gx, `${name}: grad`);
}

describe("interpolate (torch 1.13, float64: values and gradients)", () => {
  test("nearest (PyTorch's legacy rule: floor(dst * in / out), or dst / scaleFactor)", () => {
    check("nearest x2", [1, 2, 3, 2], { scaleFactor: 2 });
    check("nearest size 5x3", [1, 2, 4, 7], { size: [5, 3] });
    check("nearest scale 1.7", [2, 1, 3, 4], { scaleFactor: 1.7 });
    // torch 1.13's forward reads sources [0, 0, 0, 1, 1, 2] (floor(dst / 2.1)) but its backward, seeing an output
    // of exactly twice the input, scatters to dst >> 1 ([0, 0, 1, 1, 2, 2]): its gradient is not the transpose of
    // its forward there (torch: interpolate(x, scale_factor=2.1).backward(arange(1., 7.)) gives [3, 7, 11] for
    // x.grad where the forward implies [6, 9, 6]). Ours is the transpose of the forward, checked as such.
    check("nearest 3d scale 2.1", [1, 2, 3], { scaleFactor: 2.1, mode: "nearest" }, [0, 0, 0, 1, 1, 2]);
  });
  test("nearest-exact", () => {
    check("nearest-exact size 5x7", [1, 1, 3, 4], { size: [5, 7], mode: "nearest-exact" });
  });
  test("bilinear: half-pixel centres, alignCorners, scale factors per dim, recomputeScaleFactor, size 1", () => {
    check("bilinear size 5x7", [2, 1, 3, 4], { size: [5, 7], mode: "bilinear" });
    check("bilinear align x2", [1, 2, 3, 3], { scaleFactor: 2, mode: "bilinear", alignCorners: true });
    check("bilinear scale 1.5x0.6", [1, 1, 4, 5], { scaleFactor: [1.5, 0.6], mode: "bilinear" });
    check("bilinear scale 1.5 recompute", [1, 1, 3, 3], {
      scaleFactor: 1.7,
      mode: "bilinear",
      recomputeScaleFactor: true,
    });
    check("bilinear size 1", [1, 1, 3, 4], { size: [1, 2], mode: "bilinear", alignCorners: true });
  });
  test("linear (3-d), up and down", () => {
    check("linear size 7", [2, 2, 4], { size: 7, mode: "linear" });
    check("linear align size 7", [1, 2, 4], { size: 7, mode: "linear", alignCorners: true });
    check("linear down 3", [1, 1, 8], { size: 3, mode: "linear" });
  });
  test("bicubic and trilinear", () => {
    check("bicubic size 5x6", [1, 2, 3, 4], { size: [5, 6], mode: "bicubic" });
    check("bicubic align x2", [1, 1, 3, 3], { scaleFactor: 2, mode: "bicubic", alignCorners: true });
    check("trilinear size 3x2x4", [1, 1, 2, 3, 2], { size: [3, 2, 4], mode: "trilinear" });
  });
});

describe("interpolate: dtypes, empty batches, transforms, errors", () => {
  test("float32 follows float64 (weights rounded once), nearest keeps int32, batch of 0", () => {
    const x = seq([1, 2, 3, 4], 0.1);
    const y64 = cr.interpolate(x, { size: [5, 7], mode: "bicubic" });
    const y32 = cr.interpolate(x.to("float32"), { size: [5, 7], mode: "bicubic" });
    assert.equal(y32.dtype, "float32");
    close(y32.to("float64"), Array.from(y64.dataSync(), Number), "float32", 1e-6);
    const xi = cr.arange(6, undefined, 1, { dtype: "int32" }).reshape(1, 1, 2, 3);
    const yi = cr.interpolate(xi, { scaleFactor: 2 });
    assert.equal(yi.dtype, "int32");
    // torch: interpolate(arange(6).reshape(1, 1, 2, 3).float(), scale_factor=2)[0, 0, 1] == [0, 0, 1, 1, 2, 2]
    assert.deepEqual(yi.index(0, 0, 1).toArray(), [0, 0, 1, 1, 2, 2]);
    assert.deepEqual(
      cr.interpolate(cr.zeros([0, 3, 4, 4]), { size: [2, 9], mode: "bilinear" }).shape,
      [0, 3, 2, 9],
    );
  });
  test("vmap, jit and makeJaxpr: the same values", () => {
    const x = seq([3, 2, 4, 5], 0.4);
    const opts: InterpolateOpts = { size: [7, 3], mode: "bilinear", alignCorners: true };
    const eager = cr.interpolate(x, opts);
    const want = Array.from(eager.dataSync(), Number);
    const f = (v: Tensor) => cr.interpolate(v, opts);
    close(
      cr
        .vmap(f)(x.reshape(3, 1, 2, 4, 5))
        .reshape(eager.shape),
      want,
      "vmap",
      1e-14,
    );
    close(cr.jit(f)(x), want, "jit", 1e-14);
    assert.match(String(cr.makeJaxpr(f)(x)), /gather/);
    // per-example gradients under vmap(grad)
    const c = seq([2, 7, 3], 1);
    const g = cr.vmap(
      grad((v: Tensor) =>
        f(v.reshape(1, 2, 4, 5))
          .reshape(2, 7, 3)
          .mul(c)
          .sum(),
      ),
    )(x);
    const g0 = grad((v: Tensor) => f(v).mul(c).sum())(x.index([0, 1]));
    close(g.index([0, 1]), Array.from(g0.dataSync(), Number), "vmap(grad)", 1e-14);
  });
  test("errors name the op, the mode and the shapes", () => {
    const x = cr.zeros([1, 2, 3, 4]);
    assert.throws(
      () => cr.interpolate(x, { size: 5, mode: "linear" }),
      /interpolate: got 4-d input \[1, 2, 3, 4\], but linear mode needs 3-d input/,
    );
    assert.throws(
      () => cr.interpolate(cr.zeros([2, 3]), { size: 5 }),
      /interpolate: got 2-d input \[2, 3\], but nearest mode needs 3-d, 4-d, 5-d input/,
    );
    assert.throws(
      () => cr.interpolate(x, { size: 5, alignCorners: true }),
      /interpolate: alignCorners can only be set with the interpolating modes/,
    );
    assert.throws(
      () => cr.interpolate(x, { size: 5, scaleFactor: 2 }),
      /interpolate: give exactly one of size/,
    );
    assert.throws(() => cr.interpolate(x, {}), /interpolate: give exactly one of size/);
    assert.throws(
      () => cr.interpolate(x, { size: [1, 2, 3] }),
      /interpolate: size must have one entry per spatial dim \(2\), got \[1,2,3\]/,
    );
    assert.throws(
      () => cr.interpolate(x, { scaleFactor: 0.1 }),
      /interpolate: input and output sizes must be greater than 0, got input \[1, 2, 3, 4\] and output size \[0, 0\]/,
    );
    assert.throws(() => cr.interpolate(x, { scaleFactor: -1 }), /interpolate: scaleFactor must be positive/);
    assert.throws(
      () => cr.interpolate(x, { size: 2, mode: "area" as never }),
      /interpolate: mode must be one of nearest, nearest-exact, linear, bilinear, trilinear, bicubic, got "area"/,
    );
    assert.throws(
      () => cr.interpolate(x.to("int32"), { size: 2, mode: "bilinear" }),
      /interpolate: bilinear mode needs a float input, got int32/,
    );
  });
});

describe("nn.Upsample, UpsamplingNearest2d, UpsamplingBilinear2d", () => {
  test("the layers are interpolate with their options; no parameters; in Sequential", () => {
    const x = seq([1, 2, 3, 3], 0.1);
    const up = new nn.Upsample({ scaleFactor: 2, mode: "bilinear", alignCorners: true });
    close(up.call(x), TORCH["bilinear align x2"].y, "Upsample");
    assert.equal(up.parameters().length, 0);
    assert.match(String(up), /Upsample\(scaleFactor=2, mode=bilinear, alignCorners=true\)/);
    close(
      new nn.UpsamplingBilinear2d({ scaleFactor: 2 }).call(x),
      TORCH["bilinear align x2"].y,
      "Bilinear2d",
    );
    const n2 = new nn.UpsamplingNearest2d({ size: [5, 3] }).call(seq([1, 2, 4, 7], 0.1));
    close(n2, TORCH["nearest size 5x3"].y, "Nearest2d");
    assert.throws(() => new nn.Upsample({}), /Upsample: give exactly one of size and scaleFactor/);
    // a decoder-style stack: transposed convolution, upsampling, 1-d convolution over the flattened rows
    const m = new nn.Sequential(
      new nn.ConvTranspose2d(2, 3, 2, { stride: 2, dtype: "float64" }),
      new nn.ReLU(),
      new nn.Upsample({ size: [4, 6] }),
      new nn.Flatten(2),
      new nn.Conv1d(3, 1, 3, { padding: "same", dtype: "float64" }),
    );
    const out = m.call(x);
    assert.deepEqual(out.shape, [1, 1, 24]);
    const gs = grad((p: Tensor[]) => {
      const [w] = p;
      return cr.convTranspose2d(x, w, null, { stride: 2 }).relu().sum();
    })([m.parameters()[0]]);
    assert.deepEqual(gs[0].shape, [2, 3, 2, 2]);
  });
});

describe("the new layers in a jitted training step", () => {
  test("makeTrainStep: jit losses equal the eager twin's (Conv1d, ConvTranspose2d, Upsample)", () => {
    const F64 = { dtype: "float64" as const };
    const build = () =>
      new nn.Sequential(
        new nn.ConvTranspose2d(2, 3, 3, { stride: 2, padding: 1, outputPadding: 1, ...F64 }),
        new nn.Tanh(),
        new nn.Upsample({ size: [5, 6], mode: "bilinear" }),
        new nn.Flatten(2),
        new nn.Conv1d(3, 2, 3, { stride: 2, ...F64 }),
      );
    cr.manualSeed(5);
    const m1 = build();
    const m2 = build();
    m2.loadStateDict(m1.stateDict());
    const x = seq([4, 2, 3, 4], 0.3);
    const y = seq([4, 2, 14], 1.7);
    const loss = (out: Tensor, t: Tensor) => nn.mseLoss(out, t);
    const f = cr.optim.functional.sgd({ lr: 0.1, momentum: 0.9 });
    const stepE = cr.optim.makeTrainStep(m1, loss, f, { jit: false });
    const stepJ = cr.optim.makeTrainStep(m2, loss, f);
    let se = stepE.init();
    let sj = stepJ.init();
    const le: number[] = [];
    const lj: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [a, s1] = stepE(se, x, y);
      const [b, s2] = stepJ(sj, x, y);
      le.push(a.item());
      lj.push(b.item());
      se = s1;
      sj = s2;
    }
    assert.equal(stepJ.traceCount, 1);
    close(tensor(lj, F64), le, "jit vs eager losses", 1e-12);
    assert.ok(le[3] < le[0], `the loss decreases: ${le}`);
  });
});
