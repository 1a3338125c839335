// Glob patterns over dotted names ("blocks.*.attn.*", "layers.?.weight"), for every job key that
// chooses tensors or parameters by name ([init] skip, [freeze], [optim] lr_multipliers): one
// matcher, so a pattern means the same everywhere. Limits: `*` and `?` only (no character classes,
// no escapes: tensor names hold neither); matching is byte-wise.
#pragma once

#include <cstddef>
#include <string_view>

namespace frugal {

// True when the whole of `name` matches `pattern`: `*` matches any run of characters (none
// included, dots included, so "blocks.*" matches "blocks.0.attn.qkv.weight"), `?` exactly one
// character, anything else itself.
bool glob_match(std::string_view pattern, std::string_view name);

// The characters of `pattern` other than `*` and `?`: how specific it is (more = narrower), for
// choosing among several patterns that match one name.
size_t glob_literal_count(std::string_view pattern);

}  // namespace frugal
