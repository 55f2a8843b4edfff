/* params.c: see params.h. */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int osb_params_parse(const char *s, osb_params *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *colon = strchr(s, ':');
    if (!colon) {
        snprintf(err, errlen, "the Plugin string has no ':' after the plugin name");
        return -1;
    }
    const char *p = colon + 1;
    size_t total = strlen(p);
    if (total > 65536) {
        snprintf(err, errlen, "the Plugin string is over 64 KiB");
        return -1;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        if (out->count == OSB_MAX_PARAMS) {
            snprintf(err, errlen, "the Plugin string has more than %d words", OSB_MAX_PARAMS);
            goto fail;
        }
        char *word = malloc(total + 8); /* a word is never longer than the string, plus "=yes" */
        if (!word) {
            snprintf(err, errlen, "out of memory parsing the Plugin string");
            goto fail;
        }
        size_t n = 0;
        int quoted = 0;
        while (*p && (quoted || (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r'))) {
            if (*p == '"') {
                quoted = !quoted;
                p++;
            } else if (quoted && *p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                word[n++] = p[1];
                p += 2;
            } else {
                word[n++] = *p++;
            }
        }
        word[n] = '\0';
        if (quoted) {
            free(word);
            snprintf(err, errlen, "the Plugin string has an unterminated quote (word %zu)", out->count + 1);
            goto fail;
        }
        char *eq = strchr(word, '=');
        if (eq == word || n == 0) {
            free(word);
            snprintf(err, errlen, "word %zu of the Plugin string has an empty key", out->count + 1);
            goto fail;
        }
        if (!eq) memcpy(word + n, "=yes", 5);
        out->words[out->count++] = word;
    }
    return 0;
fail:
    osb_params_free(out);
    return -1;
}

void osb_params_free(osb_params *p) {
    for (size_t i = 0; i < p->count; i++) free(p->words[i]);
    p->count = 0;
}

const char *osb_params_get(const osb_params *p, const char *key) {
    size_t k = strlen(key);
    const char *found = NULL;
    for (size_t i = 0; i < p->count; i++)
        if (strncmp(p->words[i], key, k) == 0 && p->words[i][k] == '=') found = p->words[i] + k + 1;
    return found;
}
