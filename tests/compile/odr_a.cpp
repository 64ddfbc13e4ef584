// Two translation units that both include clip.hpp link into one program: everything the
// headers define must be inline (no multiple definitions), and the function-local statics
// (allocation counter, plan caches) must be one object.
#include <clip/clip.hpp>

clip::tensor make_in_a() { return clip::softmax(clip::tensor::ones({2, 4})); }
std::int64_t* counter_in_a() { return reinterpret_cast<std::int64_t*>(&clip::detail::allocation_counter()); }
