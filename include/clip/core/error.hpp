// clip/core/error.hpp: the one exception hierarchy of the library.
//
// Every failure a caller can provoke (a shape that does not fit, a dtype an op does not take, a
// tensor on the wrong device, an index out of range, a bad file) throws a subclass of
// clip::error whose message names the operation and the values involved, so that
// `catch (const clip::error& e)` catches everything clip throws on purpose.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace clip {

/// Base of every exception clip throws on purpose.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Shapes that cannot be combined (broadcast, matmul, reshape, concatenation).
class shape_error : public error {
public:
    using error::error;
};

/// A dtype the operation does not accept, or two dtypes that must match and do not.
class dtype_error : public error {
public:
    using error::error;
};

/// A tensor on a device the operation cannot use, or tensors on different devices.
class device_error : public error {
public:
    using error::error;
};

/// An index, axis or slice bound outside the valid range.
class index_error : public error {
public:
    using error::error;
};

/// A file or stream that cannot be read or written, or whose content is malformed.
class io_error : public error {
public:
    using error::error;
};

/// A failure inside a backend library (oneDNN, CUDA), with the failing call named.
class backend_error : public error {
public:
    using error::error;
};

namespace detail {

/// Concatenates the arguments with operator<< into one message.
template <class... Args>
std::string message(Args&&... args) {
    std::ostringstream out;
    (out << ... << std::forward<Args>(args));
    return out.str();
}

/// Throws E with the concatenated message when `condition` is false.
template <class E = error, class... Args>
void check(bool condition, Args&&... args) {
    if (!condition) [[unlikely]]
        throw E(message(std::forward<Args>(args)...));
}

} // namespace detail
} // namespace clip
