// Tests for clip_model over several ranks (clip/train/model.hpp, set_world), on a world of
// threads (tests/dist/thread_world.hpp): with gather_with_grad, with and without local_loss,
// every rank ends one step with the gradients of one process on the whole batch; without
// gather_with_grad (OpenCLIP's detached gather, no local loss) with 1/W of the towers' (and all
// of logit_scale's); SigLIP's rank form gives the whole batch's gradients whatever the options;
// gradient accumulation over ranks (ClipLoss global or local, SigLIP) gives the gradients of the
// whole batch of every rank's micro-batches, and with the detached gather the same gradients as
// the ranks without accumulation. The ranks may hold different numbers of rows.
#include "gradient_check.hpp"

#include "../dist/thread_world.hpp"
#include "clip/train/model.hpp"

#include <thread>

namespace train_distributed_test {

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

struct rank_result {
    std::vector<tensor> gradients;
    float loss = 0;
};

/// The gradients and loss of one process on the whole batch.
rank_result whole_batch(const clip::clip_config& c, const batch& b, train::objective kind = train::objective::clip) {
    const train::parameter_store store = train::parameter_store::random(c, 9, kind);
    train::clip_model model(store);
    store.zero_grad();
    rank_result out;
    out.loss = model.forward(b.images, b.ids);
    model.backward();
    for (const auto& p : store.parameters()) out.gradients.push_back(p.grad.clone());
    return out;
}
std::vector<tensor> whole_batch_gradients(const clip::clip_config& c, const batch& b) { return whole_batch(c, b).gradients; }

/// How each rank runs its step: forward + backward (micro_batches 0) or accumulated over that
/// many micro-batches.
struct step_options {
    train::world_options world;
    train::objective kind = train::objective::clip;
    std::int64_t micro_batches = 0;
};

/// Runs one step on each rank of a thread world with rows [first[r], first[r + 1]) and returns
/// every rank's gradients and loss.
std::vector<rank_result> distributed_gradients(const clip::clip_config& c, const batch& b, const std::vector<std::int64_t>& first,
                                               step_options options) {
    const int W = static_cast<int>(first.size()) - 1;
    clip::test::thread_world world(W);
    std::vector<rank_result> results(static_cast<std::size_t>(W));
    std::vector<std::thread> threads;
    for (int r = 0; r < W; ++r)
        threads.emplace_back([&, r] {
            // Rank 0 starts from other values: the broadcast in clip train makes them equal;
            // here every rank initialises from the same seed.
            const train::parameter_store store = train::parameter_store::random(c, 9, options.kind);
            train::clip_model model(store);
            model.set_world(world.rank(r), options.world);
            store.zero_grad();
            const auto rows = [&](const tensor& t) {
                return t.slice(0, first[static_cast<std::size_t>(r)], first[static_cast<std::size_t>(r) + 1]).contiguous();
            };
            float& loss = results[static_cast<std::size_t>(r)].loss;
            if (options.micro_batches > 0) {
                loss = model.forward_backward_accumulated(rows(b.images), rows(b.ids), options.micro_batches);
            } else {
                loss = model.forward(rows(b.images), rows(b.ids));
                model.backward();
            }
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
            const std::vector<rank_result> got =
                distributed_gradients(c, b, first, {.world = {.local_loss = local, .gather_with_grad = true}});
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
    const std::vector<rank_result> got =
        distributed_gradients(c, b, {0, 3, 6}, {.world = {.local_loss = false, .gather_with_grad = false}});
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

/// The mean of the ranks' losses (what clip train logs).
float mean_loss(const std::vector<rank_result>& ranks) {
    double sum = 0;
    for (const rank_result& r : ranks) sum += r.loss;
    return static_cast<float>(sum / static_cast<double>(ranks.size()));
}

TEST_CASE("SigLIP over two and three ranks: the whole batch's gradients, whatever gather_with_grad and local_loss say") {
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const clip::clip_config c = small_vit();
    const batch b = make_batch(6);
    const rank_result want = whole_batch(c, b, train::objective::siglip);
    double worst = 0;
    for (const std::vector<std::int64_t>& first : {std::vector<std::int64_t>{0, 3, 6}, {0, 2, 4, 6}, {0, 1, 4, 6}}) {
        for (const bool with_grad : {true, false}) {
            for (const bool local : {false, true}) {
                CAPTURE(first.size() - 1);
                CAPTURE(with_grad);
                CAPTURE(local);
                const std::vector<rank_result> got = distributed_gradients(
                    c, b, first, {.world = {.local_loss = local, .gather_with_grad = with_grad}, .kind = train::objective::siglip});
                // Each rank divides its rows' loss by its own rows, as OpenCLIP's: unequal shares
                // ({1, 3, 2} rows) weigh rows differently, equal shares are exact.
                if (first != std::vector<std::int64_t>{0, 1, 4, 6}) {
                    for (const rank_result& r : got) worst = std::max(worst, worst_relative_error(r.gradients, want.gradients));
                    CHECK(worst < 1e-5);
                    CHECK(mean_loss(got) == doctest::Approx(want.loss).epsilon(1e-6));
                }
                for (const rank_result& r : got) CHECK(worst_relative_error(r.gradients, got[0].gradients) == 0.0);
            }
        }
    }
    MESSAGE("SigLIP over ranks: worst relative gradient error against the whole batch " << worst);
    clip::set_num_threads(threads);
}

TEST_CASE("gradient accumulation over two and three ranks: the whole batch's gradients, ClipLoss (global or local) and SigLIP") {
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const clip::clip_config c = small_vit();
    const batch b = make_batch(12);
    double worst = 0;
    for (const train::objective kind : {train::objective::clip, train::objective::siglip}) {
        const rank_result want = whole_batch(c, b, kind);
        for (const std::vector<std::int64_t>& first : {std::vector<std::int64_t>{0, 6, 12}, {0, 4, 8, 12}, {0, 3, 7, 12}}) {
            const bool equal = first != std::vector<std::int64_t>{0, 3, 7, 12};
            for (const std::int64_t micro_batches : {2, 3}) {
                for (const bool local : {false, true}) {
                    CAPTURE(static_cast<int>(kind));
                    CAPTURE(first.size() - 1);
                    CAPTURE(micro_batches);
                    CAPTURE(local);
                    const std::vector<rank_result> got = distributed_gradients(
                        c, b, first,
                        {.world = {.local_loss = local, .gather_with_grad = true}, .kind = kind, .micro_batches = micro_batches});
                    // The global ClipLoss is exact for any shares; a local loss and SigLIP weigh
                    // rows by their rank's share, exact for equal shares.
                    if (equal || (kind == train::objective::clip && !local)) {
                        for (const rank_result& r : got) worst = std::max(worst, worst_relative_error(r.gradients, want.gradients));
                        CHECK(worst < 1e-5);
                        CHECK(mean_loss(got) == doctest::Approx(want.loss).epsilon(1e-6));
                    } else {
                        // Unequal shares: the same gradients as those ranks without accumulation.
                        const std::vector<rank_result> plain =
                            distributed_gradients(c, b, first, {.world = {.local_loss = local, .gather_with_grad = true}, .kind = kind});
                        CHECK(worst_relative_error(got[0].gradients, plain[0].gradients) < 1e-5);
                    }
                    for (const rank_result& r : got) CHECK(worst_relative_error(r.gradients, got[0].gradients) == 0.0);
                }
            }
        }
    }
    MESSAGE("accumulation over ranks: worst relative gradient error against the whole batch " << worst);
    clip::set_num_threads(threads);
}

TEST_CASE("gradient accumulation with the detached gather: the gradients of the same ranks without accumulation") {
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const clip::clip_config c = small_vit();
    const batch b = make_batch(12);
    const std::vector<std::int64_t> first = {0, 6, 12};
    const train::world_options detached{.local_loss = false, .gather_with_grad = false};
    const std::vector<rank_result> plain = distributed_gradients(c, b, first, {.world = detached});
    const std::vector<rank_result> got = distributed_gradients(c, b, first, {.world = detached, .micro_batches = 3});
    CHECK(worst_relative_error(got[0].gradients, plain[0].gradients) < 1e-5);
    // ... which is not the whole batch's: the towers get 1/W of it.
    CHECK(worst_relative_error(got[0].gradients, whole_batch_gradients(c, b)) > 0.1);
    CHECK(got[0].loss == doctest::Approx(plain[0].loss).epsilon(1e-6));
    clip::set_num_threads(threads);
}

} // namespace train_distributed_test
