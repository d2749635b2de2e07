/* placeholder */
typedef int fkm_placeholder_atomic_write;
