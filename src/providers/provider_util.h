/*
 * Helpers shared by the translating provider files of this module
 * (gemini.c, ollama.c, ...); not for use outside src/providers/.
 */
#ifndef LX_PROVIDERS_PROVIDER_UTIL_H
#define LX_PROVIDERS_PROVIDER_UTIL_H

/* Size of the buffer lx_provider__call_id fills, NUL included, with room to spare. */
#define LX_PROVIDER_CALL_ID_SIZE 32

/*
 * Write a fresh OpenAI-style tool call id, "call_" plus 24 random hex digits
 * (lx_rand_u64), NUL-terminated, into out (caller storage of
 * LX_PROVIDER_CALL_ID_SIZE bytes). Never fails; any thread.
 */
void lx_provider__call_id(char out[LX_PROVIDER_CALL_ID_SIZE]);

#endif
