#ifndef OSBACKUP_CARCHIVE_SHIM_H
#define OSBACKUP_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#include <locale.h>

/// The C.UTF-8 locale for LC_CTYPE (glibc has it built in), or (locale_t)0 when it cannot be made.
/// libarchive 3.6 converts pathnames through the locale's charset: in the C locale a non-ASCII UTF-8
/// pathname cannot be written (archive_write_header crashes on the failed conversion) nor read back as
/// UTF-8. Swift cannot import LC_CTYPE_MASK, hence this helper.
static inline locale_t osb_archive_utf8_locale(void) {
    return newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/// Makes `locale` the calling thread's locale; returns the previous one (uselocale(3)).
static inline locale_t osb_archive_use_locale(locale_t locale) {
    return uselocale(locale);
}
#endif
