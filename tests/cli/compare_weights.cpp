// tests/cli/compare_weights.cpp: whether two weight files hold the same tensors within a relative
// tolerance: for each tensor, the relative error ‖a − b‖₂ / ‖a‖₂ (a tensor of zeros must stay
// exactly zero). Prints the worst tensor, and also the largest elementwise difference relative
// to its tensor's largest entry (Adam turns tiny differences in near-zero gradients into
// larger differences of a few elements: g / (|g| + eps) is steep there). Exit 0 when every
// tensor's relative error is within TOL, 1 otherwise.
//
//   compare-weights A.safetensors B.safetensors TOL
#include <clip/clip.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: " << argv[0] << " A.safetensors B.safetensors TOL\n";
        return 2;
    }
    try {
        const clip::safetensors a = clip::safetensors::open(argv[1]), b = clip::safetensors::open(argv[2]);
        const double tolerance = std::atof(argv[3]);
        if (a.names() != b.names()) {
            std::cerr << "the files hold different tensor names\n";
            return 1;
        }
        double worst = 0, worst_element = 0;
        std::string worst_name, worst_element_name;
        for (const std::string& name : a.names()) {
            const clip::tensor x = a.get(name), y = b.get(name);
            if (x.shape() != y.shape()) {
                std::cerr << name << ": shapes " << x.shape() << " and " << y.shape() << '\n';
                return 1;
            }
            if (x.dtype() != clip::dtype::f32) continue; // counters
            const std::vector<float> u = x.to_vector<float>(), v = y.to_vector<float>();
            double norm = 0, difference_norm = 0, scale = 0, difference = 0;
            for (std::size_t i = 0; i < u.size(); ++i) {
                const double d = std::abs(static_cast<double>(u[i]) - v[i]);
                norm += static_cast<double>(u[i]) * u[i];
                difference_norm += d * d;
                scale = std::max(scale, std::abs(static_cast<double>(u[i])));
                difference = std::max(difference, d);
            }
            const auto ratio = [](double d, double s) { return s > 0 ? d / s : (d > 0 ? INFINITY : 0.0); };
            const double relative = ratio(std::sqrt(difference_norm), std::sqrt(norm)), element = ratio(difference, scale);
            if (relative >= worst) {
                worst = relative;
                worst_name = name;
            }
            if (element >= worst_element) {
                worst_element = element;
                worst_element_name = name;
            }
        }
        std::printf("%zu tensors; largest relative error %.3g (%s); largest element difference %.3g of its tensor's largest entry (%s)\n",
                    a.size(), worst, worst_name.c_str(), worst_element, worst_element_name.c_str());
        return worst <= tolerance ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "compare-weights: " << e.what() << '\n';
        return 2;
    }
}
