/* params.h: the Plugin string "openstack: key=value key2="a b" flag" split into words. */
#ifndef OSB_PARAMS_H
#define OSB_PARAMS_H

#include <stddef.h>

#define OSB_MAX_PARAMS 256

typedef struct {
    size_t count;
    char *words[OSB_MAX_PARAMS]; /* "key=value", unquoted; a bare word became "word=yes" */
} osb_params;

/* Parses the text after the first ':'. Quoting: key="a b" keeps spaces; inside quotes \" and \\ escape.
 * Returns 0, or -1 with a sentence in err (unterminated quote, empty key, too many words...). */
int osb_params_parse(const char *plugin_string, osb_params *out, char *err, size_t errlen);
void osb_params_free(osb_params *p);

/* The value of the last `key=` word, or NULL. */
const char *osb_params_get(const osb_params *p, const char *key);

#endif
