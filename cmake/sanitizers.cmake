# CREW_SANITIZE lists sanitizers for the whole build (library, tests,
# benchmarks), e.g. "address;undefined" or "thread".
if(CREW_SANITIZE)
    string(REPLACE ";" "," _crew_san "${CREW_SANITIZE}")
    add_compile_options(-fsanitize=${_crew_san} -fno-omit-frame-pointer
        -fno-sanitize-recover=all -g)
    add_link_options(-fsanitize=${_crew_san})
endif()
