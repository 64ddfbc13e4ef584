// Tests for clip_model over several ranks (clip/train/model.hpp, set_world), on a world of
// threads (tests/dist/thread_world.hpp): with gather_with_grad, with and without local_loss,
// every rank ends one step with the gradients of one process on the whole batch; without
// gather_with_grad (OpenCLIP's detached gather, no local loss) with 1/W of the towers' (and all
// of logit_scale's); the ranks may
// hold different numbers of rows.
#include "gradient_check.hpp"

#include "../dist/thread_world.hpp"
#include "clip/train/model.hpp"

#include <thread>

using clip::tensor;
namespace train = clip::train;

namespace {

clip::clip_config small_vit() {
    clip::clip_config c = clip::detail::make_vit(16, 32, 1, 64, 8, 64, 1);
    c.text.vocab_size = 50;
    c.text.context_length = 12;
    return c;
}

struct batch {
    tensor images, ids;
};

batch make_batch(std::int64_t n) {
    batch b{clip::rand_normal({n, 3, 32, 32}, 3), tensor::full({n, 12}, 7, clip::dtype::i64)};
    for (std::int64_t m = 0; m < n; ++m) {
        b.ids.select(0, m).select(0, 1 + m % 5).copy_from(tensor::full({}, 10 + m, clip::dtype::i64));
        b.ids.select(0, m).select(0, 3 + m % 7).copy_from(tensor::full({}, 49, clip::dtype::i64)); // EOT
    }
    return b;
}

/// The gradients of one process on the whole batch.
std::vector<tensor> whole_batch_gradients(const clip::clip_config& c, const batch& b) {
    const train::parameter_store store = train::parameter_store::random(c, 9);
    train::clip_model model(store);
    store.zero_grad();
    (void)model.forward(b.images, b.ids);
    model.backward();
    std::vector<tensor> out;
    for (const auto& p : store.parameters()) out.push_back(p.grad.clone());
    return out;
}

/// Runs one step on each rank of a thread world with rows [first[r], first[r + 1]) and returns
/// every rank's gradients and loss.
struct rank_result {
    std::vector<tensor> gradients;
    float loss = 0;
};
std::vector<rank_result> distributed_gradients(const clip::clip_config& c, const batch& b, const std::vector<std::int64_t>& first,
                                               train::world_options options) {
    const int W = static_cast<int>(first.size()) - 1;
    clip::test::thread_world world(W);
    std::vector<rank_result> results(static_cast<std::size_t>(W));
    std::vector<std::thread> threads;
    for (int r = 0; r < W; ++r)
        threads.emplace_back([&, r] {
            // Rank 0 starts from other values: the broadcast in clip train makes them equal;
            // here every rank initialises from the same seed.
            const train::parameter_store store = train::parameter_store::random(c, 9);
            train::clip_model model(store);
            model.set_world(world.rank(r), options);
            store.zero_grad();
            const auto rows = [&](const tensor& t) {
                return t.slice(0, first[static_cast<std::size_t>(r)], first[static_cast<std::size_t>(r) + 1]).contiguous();
            };
            results[static_cast<std::size_t>(r)].loss = model.forward(rows(b.images), rows(b.ids));
            model.backward();
            for (const auto& p : store.parameters()) results[static_cast<std::size_t>(r)].gradients.push_back(p.grad.clone());
        });
    for (std::thread& t : threads) t.join();
    return results;
}

/// ‖a − b‖ / ‖b‖ over every tensor, the worst.
double worst_relative_error(const std::vector<tensor>& a, const std::vector<tensor>& b, float scale_b = 1.0f) {
    double worst = 0;
    for (std::size_t k = 0; k < a.size(); ++k) {
        const std::vector<float> x = a[k].to_vector<float>(), y = b[k].to_vector<float>();
        double d = 0, n = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double want = static_cast<double>(y[i]) * scale_b;
            d += (x[i] - want) * (x[i] - want);
            n += want * want;
        }
        if (n > 0) worst = std::max(worst, std::sqrt(d / n));
        else worst = std::max(worst, d > 0 ? 1.0 : 0.0);
    }
    return worst;
}

} // namespace

TEST_CASE("two and three ranks with gather_with_grad: the whole batch's gradients, global or local loss") {
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const clip::clip_config c = small_vit();
    const batch b = make_batch(6);
    const std::vector<tensor> want = whole_batch_gradients(c, b);
    for (const std::vector<std::int64_t>& first : {std::vector<std::int64_t>{0, 3, 6}, {0, 2, 4, 6}, {0, 1, 4, 6}}) {
        for (const bool local : {false, true}) {
            CAPTURE(first.size() - 1);
            CAPTURE(local);
            const std::vector<rank_result> got = distributed_gradients(c, b, first, {.local_loss = local, .gather_with_grad = true});
            for (const rank_result& r : got) {
                // Unequal shares ({1, 3, 2} rows) weigh rows differently under a local loss, as in
                // OpenCLIP (each rank's loss is its own rows' mean); equal shares are exact.
                const bool equal = first == std::vector<std::int64_t>{0, 3, 6} || first == std::vector<std::int64_t>{0, 2, 4, 6};
                if (!local || equal) CHECK(worst_relative_error(r.gradients, want) < 1e-5);
            }
            // Every rank holds the same gradients after the all-reduce.
            for (const rank_result& r : got) CHECK(worst_relative_error(r.gradients, got[0].gradients) == 0.0);
        }
    }
    clip::set_num_threads(threads);
}

TEST_CASE("without gather_with_grad a rank keeps its own rows' share: 1/W of the gradient") {
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const clip::clip_config c = small_vit();
    const batch b = make_batch(6);
    const std::vector<tensor> want = whole_batch_gradients(c, b);
    const std::vector<rank_result> got = distributed_gradients(c, b, {0, 3, 6}, {.local_loss = false, .gather_with_grad = false});
    // logit_scale (parameter 2) is not behind the gather: every rank has its whole gradient, and
    // the average keeps it whole, as in OpenCLIP.
    std::vector<tensor> towers = got[0].gradients, want_towers = want;
    const std::vector<tensor> scale = {towers[2]}, want_scale = {want_towers[2]};
    towers.erase(towers.begin() + 2);
    want_towers.erase(want_towers.begin() + 2);
    CHECK(worst_relative_error(towers, want_towers, 0.5f) < 1e-5);
    CHECK(worst_relative_error(scale, want_scale) < 1e-5);
    clip::set_num_threads(threads);
}
