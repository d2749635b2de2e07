/* placeholder */
typedef int fkm_placeholder_npy;
