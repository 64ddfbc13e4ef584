// clip/backend/cpu/packed.hpp: weights kept in the layout a backend prefers.
//
// A `packed_weights` wraps a constant operand (a linear layer's weight, a convolution kernel).
// The first product that uses it asks the backend for its preferred layout and, if that differs
// from the plain one, reorders the weights once and keeps the result here, keyed by layout; later
// calls use the kept copy. The plain tensor stays available to every other backend.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "clip/core/tensor.hpp"

namespace clip {

class packed_weights {
public:
    packed_weights() = default;
    explicit packed_weights(tensor plain) : plain_(std::move(plain)), state_(std::make_shared<state>()) {
        detail::require_defined(plain_, "packed_weights");
    }

    const tensor& plain() const noexcept { return plain_; }
    bool defined() const noexcept { return plain_.defined(); }

    /// The copy kept for `layout_key`, made by `make()` on first use.
    template <class Make>
    std::shared_ptr<void> packed(const std::string& layout_key, Make&& make) const {
        std::lock_guard lock(state_->mutex);
        auto [it, inserted] = state_->copies.try_emplace(layout_key);
        if (inserted) it->second = make();
        return it->second;
    }
    /// Whether the copy for `layout_key` has been made.
    bool has(const std::string& layout_key) const {
        std::lock_guard lock(state_->mutex);
        return state_->copies.count(layout_key) > 0;
    }
    /// Whether a copy has been made whose key does not start with `prefix` (another backend's).
    bool has_other_than(std::string_view prefix) const {
        std::lock_guard lock(state_->mutex);
        return std::any_of(state_->copies.begin(), state_->copies.end(),
                           [&](const auto& copy) { return std::string_view(copy.first).substr(0, prefix.size()) != prefix; });
    }
    /// Number of packed copies made so far (tests check it stays at one per layout).
    std::size_t packed_count() const {
        std::lock_guard lock(state_->mutex);
        return state_->copies.size();
    }

private:
    struct state {
        std::mutex mutex;
        std::map<std::string, std::shared_ptr<void>> copies;
    };
    tensor plain_;
    std::shared_ptr<state> state_;
};

} // namespace clip
