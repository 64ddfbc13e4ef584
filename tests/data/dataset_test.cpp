// Tests for clip/data/dataset.hpp: a dataset defined outside clip plugs into the seam (size, get,
// the default name) and is used through a pointer to the base.
#include "../support.hpp"

#include <clip/data/dataset.hpp>

#include <memory>

namespace data_dataset_test {

namespace {

/// Grey images of width i + 1, captioned with their index.
class widths final : public clip::dataset {
public:
    std::size_t size() const override { return 3; }
    clip::example get(std::size_t i) const override {
        return {clip::image(static_cast<std::int64_t>(i) + 1, 2, clip::image_mode::l), "image " + std::to_string(i)};
    }
};

} // namespace

TEST_CASE("a user-defined dataset works through the base class") {
    const std::shared_ptr<const clip::dataset> data = std::make_shared<widths>();
    CHECK(data->size() == 3);
    const clip::example e = data->get(2);
    CHECK(e.picture.width() == 3);
    CHECK(e.picture.height() == 2);
    CHECK(e.caption == "image 2");
    CHECK(data->name(1) == "example 1");
}

} // namespace data_dataset_test
