// clip/version.hpp: the library version, for programs that report what they were built with.
#pragma once

#include <string_view>

#define CLIP_VERSION_MAJOR 0
#define CLIP_VERSION_MINOR 1
#define CLIP_VERSION_PATCH 0

namespace clip {

/// "MAJOR.MINOR.PATCH" of the headers this translation unit was compiled with.
constexpr std::string_view version_string() noexcept { return "0.1.0"; }

} // namespace clip
