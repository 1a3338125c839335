// The Bible texts behind [data] source = "bible-kjv", "bible-web" and "bible-rv1909": printed once by
// Debian's tools, cleaned to one verse per line without its reference, and cached under a directory.
// Limits: the 66 books of the Protestant canon only (the WEB module's deuterocanon is left out, so the
// three texts hold the same books); characters as the modules have them (UTF-8; the WEB's curly
// quotes and the Spanish accents are kept, so each text has its own character set).
#pragma once

#include <string>
#include <string_view>

namespace frugal::train {

// The cached text of `source` (bible-kjv: `bible` of Debian's bible-kjv; bible-web: diatheke with the
// SWORD module engWEB2015eb of sword-text-web; bible-rv1909: diatheke with spaRV1909eb of
// sword-text-sparv), made on first use as cache_dir/{kjv,web,rv1909}.txt. InputError naming the
// Debian package to install when the program or the module is missing.
std::string bible_text_path(const std::string& source, const std::string& cache_dir);

// The King James text: bible_text_path("bible-kjv", cache_dir).
std::string kjv_text_path(const std::string& cache_dir);

// Plain verses from what `diatheke -b MODULE -k RANGE` prints by default (the module's OSIS markup):
// one line per verse, "Book C:V: " then the verse, where a line may start with a heading that
// diatheke repeats from an earlier verse, and the last line is "(MODULE)". Returns one verse per line
// without the reference: tags dropped, <note> and <title> dropped with their contents, the text of a
// verse ending at its chapter's or book's end marker (what follows, e.g. the WEB's glossary after
// Revelation, belongs to no verse), XML entities decoded, whitespace collapsed to single spaces, a
// space put between two tagged words the markup joins ("God</w><w>created", "said</w>,<w>and"),
// empty verses left out.
std::string diatheke_plain_verses(std::string_view printed);

}  // namespace frugal::train
