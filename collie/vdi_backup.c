/* vdi_backup.c: collie vdi backup | restore (stub). */
#include "collie.h"
#include "vdi_lifecycle.h"
int vdi_backup(int argc, char **argv) { die_msg("vdi backup: not yet"); return 1; }
int vdi_restore(int argc, char **argv) { die_msg("vdi restore: not yet"); return 1; }
