# Warnings every target of ours compiles with: -Wall -Wextra clean on gcc and clang.
set(FLASHKM_WARNINGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wno-unknown-pragmas)
