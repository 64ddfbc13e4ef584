// clip/backend/reference/matmul.hpp: the obviously correct matrix product, on Eigen.
//
// The oracle the tests compare every other backend against, and the CPU implementation when
// clip is built without oneDNN. Each batch is one Eigen product on strided maps (no copies);
// bias, activation and residual follow in plain loops (see matmul_spec.hpp for the formula).
#pragma once

#include "clip/backend/reference/eigen.hpp"

#include "clip/ops/matmul_spec.hpp"

namespace clip::detail::reference {

inline void matmul(const tensor& out, const tensor& a, const tensor& b, const matmul_options& o) {
    const matmul_shape s = check_matmul(a, b, o, "matmul");
    using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using stride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
    const shape out_shape = s.out();
    const tensor ea = a.expand([&] { shape t = s.batch; t.push_back(s.m); t.push_back(s.k); return t; }());
    const tensor eb = b.expand([&] { shape t = s.batch; t.push_back(s.k); t.push_back(s.n); return t; }());
    const tensor res = o.residual.defined() ? o.residual.expand(out_shape).to(dtype::f32) : tensor{};
    const std::vector<float> bias = o.bias.defined() ? o.bias.to_vector<float>() : std::vector<float>{};
    const std::int64_t batches = s.batch.numel();
    for (std::int64_t i = 0; i < batches; ++i) {
        tensor ai = ea, bi = eb, oi = out, ri = res;
        for (std::int64_t rest = i, axis = s.batch.size() - 1; axis >= 0; --axis) {
            const std::int64_t idx = rest % s.batch[static_cast<int>(axis)];
            rest /= s.batch[static_cast<int>(axis)];
            ai = ai.select(axis, idx), bi = bi.select(axis, idx), oi = oi.select(axis, idx);
            if (ri.defined()) ri = ri.select(axis, idx);
        }
        const Eigen::Map<const matrix, 0, stride> ma(ai.data<float>(), s.m, s.k, stride(ai.strides()[0], ai.strides()[1]));
        const Eigen::Map<const matrix, 0, stride> mb(bi.data<float>(), s.k, s.n, stride(bi.strides()[0], bi.strides()[1]));
        const matrix product = ma * mb;
        float* y = oi.data<float>();
        for (std::int64_t r = 0; r < s.m; ++r)
            for (std::int64_t c = 0; c < s.n; ++c) {
                float v = o.scale * product(r, c) + (bias.empty() ? 0.0f : bias[static_cast<std::size_t>(c)]);
                v = activate(o.act, v);
                if (ri.defined()) v += ri.data<float>()[r * ri.strides()[0] + c * ri.strides()[1]];
                y[r * oi.strides()[0] + c * oi.strides()[1]] = v;
            }
    }
}

} // namespace clip::detail::reference
