// examples/clip/progress.hpp: a progress bar on stderr for long commands (`clip index`).
//
// On a terminal it redraws one line in place (at most 10 times a second); when stderr is a file or
// a pipe it prints a line at every tenth of the work instead, so logs stay short. The last call
// (done == total) always prints the full bar and ends the line.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace clip_tool {

class progress_bar {
public:
    progress_bar(std::string what, std::int64_t total)
        : what_(std::move(what)), total_(total), start_(clock::now()), terminal_(::isatty(STDERR_FILENO) == 1) {}

    /// `done` of the total are finished.
    void update(std::int64_t done) {
        const auto now = clock::now();
        const bool last = done >= total_;
        if (!last) {
            if (terminal_ && now - shown_ < std::chrono::milliseconds(100)) return;
            if (!terminal_ && (total_ <= 0 || done * 10 / total_ == shown_tenth_)) return;
        }
        shown_ = now;
        shown_tenth_ = total_ > 0 ? done * 10 / total_ : 0;
        const double seconds = std::chrono::duration<double>(now - start_).count();
        const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
        constexpr int width = 30;
        const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.resize(width, '.');
        char eta[32] = "";
        if (!last && rate > 0) std::snprintf(eta, sizeof eta, ", %.0f s left", static_cast<double>(total_ - done) / rate);
        std::fprintf(stderr, "%s%s [%s] %lld/%lld (%.0f%%) %.1f/s%s%s", terminal_ ? "\r" : "", what_.c_str(), bar.c_str(),
                     static_cast<long long>(done), static_cast<long long>(total_),
                     total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0, rate, eta,
                     terminal_ && !last ? "\033[K" : "\n");
        std::fflush(stderr);
    }

private:
    using clock = std::chrono::steady_clock;
    std::string what_;
    std::int64_t total_;
    clock::time_point start_, shown_{};
    std::int64_t shown_tenth_ = -1;
    bool terminal_;
};

} // namespace clip_tool
