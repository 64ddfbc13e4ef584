// Consumer check: a program outside the clip repository that includes the umbrella header
// through the `clip` Meson dependency and prints the library version.
#include <clip/clip.hpp>

#include <iostream>

int main() {
    std::cout << "clip " << clip::version_string() << " (meson subproject consumer)\n";
    return 0;
}
