// Compiled with -Wall -Wextra -Werror -pedantic: the umbrella header alone must build cleanly
// in a user's strictest settings.
#include <clip/clip.hpp>

int main() {
    const clip::tensor x = clip::tensor::ones({2, 3});
    const clip::tensor y = clip::gelu(x * 2.0f + 1.0f);
    return y.numel() == 6 ? 0 : 1;
}
