// clip/core/print.hpp: readable printing of tensors, in the spirit of NumPy's repr.
//
// `std::cout << t` prints a header line (dtype, shape, device) and the values, nested by axis;
// axes longer than 6 are summarised as the first and last 3 entries around "...".
#pragma once

#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

#include "clip/core/tensor.hpp"

namespace clip {

namespace detail {

inline void print_values(std::ostream& out, const tensor& t, int axis, std::int64_t offset, const std::vector<double>& v,
                         const strides& st, int indent) {
    const std::int64_t n = t.shape()[axis];
    const bool summarise = n > 6;
    out << '[';
    for (std::int64_t i = 0; i < n; ++i) {
        if (summarise && i == 3) {
            out << (axis + 1 == t.ndim() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
            i = n - 3;
        }
        const std::int64_t at = offset + i * st[axis];
        if (axis + 1 == t.ndim()) {
            std::ostringstream cell;
            if (is_floating(t.dtype())) cell << std::setprecision(4) << v[static_cast<std::size_t>(at)];
            else cell << static_cast<std::int64_t>(v[static_cast<std::size_t>(at)]);
            out << cell.str();
        } else {
            print_values(out, t, axis + 1, at, v, st, indent + 1);
        }
        if (i + 1 < n) out << (axis + 1 == t.ndim() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
    }
    out << ']';
}

} // namespace detail

inline std::ostream& operator<<(std::ostream& out, const tensor& t) {
    if (!t.defined()) return out << "tensor(undefined)";
    out << "tensor(" << t.dtype() << ' ' << t.shape() << ", " << t.device() << ")\n";
    if (t.ndim() == 0) {
        if (is_floating(t.dtype())) return out << t.item<float>();
        return out << t.item<std::int64_t>();
    }
    if (t.numel() == 0) return out << "[]";
    std::vector<double> values;
    for (float v : t.to_vector<float>()) values.push_back(v);
    if (!is_floating(t.dtype())) {
        values.clear();
        for (std::int64_t v : t.to_vector<std::int64_t>()) values.push_back(static_cast<double>(v));
    }
    detail::print_values(out, t, 0, 0, values, detail::contiguous_strides(t.shape()), 0);
    return out;
}

} // namespace clip
