/* crc32c.h: CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
#ifndef CRC32C_H
#define CRC32C_H
#include <stddef.h>
#include <stdint.h>
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);   /* start with crc = 0 */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
#endif
