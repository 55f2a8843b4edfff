#ifndef OSBACKUP_COPENSSL_SHIM_H
#define OSBACKUP_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/crypto.h>
#endif
