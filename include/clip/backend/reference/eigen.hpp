// clip/backend/reference/eigen.hpp: Eigen, included once for the reference backend.
//
// Eigen's own headers do not build warning-free at -Wextra; the pragmas keep that out of users'
// -Werror builds.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
