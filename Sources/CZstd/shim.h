#ifndef OSBACKUP_CZSTD_SHIM_H
#define OSBACKUP_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif
