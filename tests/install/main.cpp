// Install check: compiled outside the build tree against the installed headers, with nothing but
// the flags from the installed clip.pc (`pkg-config --cflags --libs clip`).
#include <clip/clip.hpp>

#include <iostream>

int main() {
    std::cout << "clip " << clip::version_string() << " (installed, via pkg-config)\n";
    return 0;
}
