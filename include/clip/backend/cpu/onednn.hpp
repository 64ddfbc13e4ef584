// clip/backend/cpu/onednn.hpp: the oneDNN engine, memory descriptors and the plan cache.
//
// Creating a oneDNN primitive costs far more than running a small one, so every primitive is
// built once per distinct spec (shapes, strides, dtypes, post-ops) and kept in a cache; a
// steady-state loop creates none (`plan_creations()` counts them for the tests). oneDNN errors
// become clip::backend_error naming the failing step.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "clip/backend/cpu/packed.hpp"
#include "clip/core/mapped_memory.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/tensor.hpp"
#include "clip/ops/matmul_spec.hpp"

namespace clip::detail::onednn {

inline dnnl::engine& engine() {
    static dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}

/// A stream per thread: oneDNN streams are not meant to be shared between threads.
inline dnnl::stream& stream() {
    thread_local dnnl::stream s(engine());
    return s;
}

inline std::atomic<std::int64_t>& plan_counter() noexcept {
    static std::atomic<std::int64_t> n{0};
    return n;
}

/// Number of oneDNN primitives created so far by clip.
inline std::int64_t plan_creations() noexcept { return plan_counter().load(); }

inline dnnl::memory::data_type to_dnnl(dtype t) {
    switch (t) {
    case dtype::f32: return dnnl::memory::data_type::f32;
    case dtype::f16: return dnnl::memory::data_type::f16;
    case dtype::bf16: return dnnl::memory::data_type::bf16;
    case dtype::i32: return dnnl::memory::data_type::s32;
    case dtype::u8: return dnnl::memory::data_type::u8;
    case dtype::i64: break;
    }
    throw dtype_error(message("oneDNN has no ", t, " type"));
}

/// Descriptor of `t` seen with shape `s` (same rank; extent-1 axes may differ from t's, which is
/// how oneDNN expresses broadcasting).
inline dnnl::memory::desc describe(const shape& s, const strides& st, dtype t) {
    dnnl::memory::dims dims(s.begin(), s.end()), steps(st.begin(), st.end());
    // oneDNN checks that strides do not make axes overlap, which a size-1 axis never does in
    // practice; give such axes the stride a contiguous layout would have.
    const strides dense = contiguous_strides(s);
    for (int i = 0; i < s.size(); ++i)
        if (s[i] == 1) steps[static_cast<std::size_t>(i)] = dense[i];
    return dnnl::memory::desc(dims, to_dnnl(t), steps);
}

/// Appends the bytes of `values` to a cache key.
template <class... T>
void append_key(std::string& key, const T&... values) {
    (key.append(reinterpret_cast<const char*>(&values), sizeof(values)), ...);
}
inline void append_key(std::string& key, const shape& s) {
    append_key(key, s.size());
    key.append(reinterpret_cast<const char*>(s.begin()), static_cast<std::size_t>(s.size()) * sizeof(std::int64_t));
}

/// Cache of primitives (with their descriptors) by spec key and thread count; thread-safe.
/// oneDNN fixes a primitive's thread count when it creates it (from omp_get_max_threads()), so
/// a plan made before set_num_threads(n) would go on running with the old count: the count is
/// part of the key.
template <class Primitive, class Descriptor>
class plan_cache {
public:
    struct plan {
        Descriptor pd;
        Primitive primitive;
    };

    template <class Make>
    const plan& get(const std::string& spec, Make&& make) {
        std::string key = spec;
        append_key(key, omp_get_max_threads());
        std::lock_guard lock(mutex_);
        if (auto it = plans_.find(key); it != plans_.end()) return it->second;
        if (plans_.size() >= capacity) plans_.clear(); // a workload with unbounded shapes stays bounded
        Descriptor pd = make();
        plan_counter().fetch_add(1);
        Primitive primitive(pd);
        return plans_.emplace(key, plan{pd, primitive}).first->second;
    }

    static constexpr std::size_t capacity = 4096;

private:
    std::mutex mutex_;
    std::unordered_map<std::string, plan> plans_;
};

/// Runs `f`, turning oneDNN's exceptions into clip::backend_error.
template <class F>
decltype(auto) guarded(const char* what, F&& f) {
    try {
        return f();
    } catch (const dnnl::error& e) {
        throw backend_error(message(what, ": oneDNN failed: ", e.what(), " (status ", static_cast<int>(e.status), ")"));
    }
}

/// Scratch memory for one primitive execution. oneDNN's own ("library") scratchpad is shared
/// between threads in Debian's build, so primitives run concurrently from several application
/// threads would overwrite each other's scratch space; each clip thread passes its own instead.
/// It grows to the largest request and is then reused, so steady state allocates nothing.
inline dnnl::memory scratchpad(const dnnl::memory::desc& md) {
    thread_local std::shared_ptr<void> buffer;
    thread_local std::size_t capacity = 0;
    const std::size_t bytes = md.get_size();
    if (bytes > capacity) {
        buffer = allocate(bytes, device::cpu());
        capacity = bytes;
    }
    return dnnl::memory(md, engine(), buffer.get());
}

/// Memory for an operand that one primitive call needs in another layout: weights that change
/// between calls (a training step's), which are reordered on every call instead of packed once.
/// `slot` tells apart the operands of one call. Like scratchpad(), each slot grows to its largest
/// request and is then reused.
inline void* workspace(std::size_t bytes, int slot) {
    constexpr int slots = 2;
    thread_local std::shared_ptr<void> buffers[slots];
    thread_local std::size_t capacities[slots] = {};
    check(slot >= 0 && slot < slots, "onednn::workspace: no slot ", slot);
    if (bytes > capacities[slot]) {
        buffers[slot] = allocate(bytes, device::cpu());
        capacities[slot] = bytes;
    }
    return buffers[slot].get();
}

/// Primitive attributes every clip plan uses: user-managed scratchpad (see scratchpad()).
inline dnnl::primitive_attr base_attributes() {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
}

inline dnnl::memory wrap(const dnnl::memory::desc& md, const tensor& t) {
    return dnnl::memory(md, engine(), t.data_ptr());
}

/// Appends the activation as an eltwise post-op (QuickGELU is swish with alpha 1.702).
inline void append_activation(dnnl::post_ops& ops, activation act) {
    switch (act) {
    case activation::none: return;
    case activation::relu: return ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    case activation::gelu: return ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    case activation::quick_gelu: return ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.702f, 0.0f);
    }
}

/// Copies `from` into `to`, the same values in another layout, or adds them to `to`'s when
/// `accumulate` (the sum post-op, beta = 1). Reorder plans are cached by the two layouts.
inline void reorder_into(const dnnl::memory& from, const dnnl::memory& to, bool accumulate = false) {
    const dnnl::memory::desc from_md = from.get_desc(), to_md = to.get_desc();
    std::string key = "reorder";
    key.append(reinterpret_cast<const char*>(&from_md.data), sizeof(from_md.data));
    key.append(reinterpret_cast<const char*>(&to_md.data), sizeof(to_md.data));
    append_key(key, accumulate);
    static plan_cache<dnnl::reorder, dnnl::reorder::primitive_desc> plans;
    const auto& plan = plans.get(key, [&] {
        dnnl::primitive_attr attr = base_attributes();
        if (accumulate) {
            dnnl::post_ops ops;
            ops.append_sum(1.0f);
            attr.set_post_ops(ops);
        }
        return dnnl::reorder::primitive_desc(engine(), from_md, engine(), to_md, attr);
    });
    plan.primitive.execute(stream(), {{DNNL_ARG_FROM, from},
                                      {DNNL_ARG_TO, to},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc())}});
    stream().wait();
}

/// `plain` in the layout `want`: itself when it already has it, else a copy reordered into
/// workspace `slot` (valid until the next use of that slot on this thread).
inline dnnl::memory in_layout(const dnnl::memory& plain, const dnnl::memory::desc& want, int slot) {
    if (want == plain.get_desc()) return plain;
    dnnl::memory copy(want, engine(), workspace(want.get_size(), slot));
    reorder_into(plain, copy);
    return copy;
}

/// The weights in the layout `want` that a plan asked for: `plain` itself when it already has
/// it, else the copy kept in `packed`, reordered on first use.
inline dnnl::memory weights_in_layout(const packed_weights* packed, const dnnl::memory& plain,
                                      const dnnl::memory::desc& want) {
    if (!packed || want == plain.get_desc()) return plain;
    std::string layout_key;
    layout_key.append(reinterpret_cast<const char*>(&want.data), sizeof(want.data));
    std::shared_ptr<void> bytes = packed->packed(layout_key, [&] {
        std::shared_ptr<void> memory = allocate(want.get_size(), device::cpu());
        dnnl::memory dst(want, engine(), memory.get());
        const dnnl::reorder::primitive_desc pd(plain, dst, base_attributes());
        dnnl::reorder(pd).execute(stream(), {{DNNL_ARG_FROM, plain},
                                             {DNNL_ARG_TO, dst},
                                             {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}});
        stream().wait();
        // The products read the packed copy from now on: a checkpoint's mapped pages can go.
        release_file_pages(plain.get_data_handle(), plain.get_desc().get_size());
        return memory;
    });
    return dnnl::memory(want, engine(), bytes.get());
}

} // namespace clip::detail::onednn
