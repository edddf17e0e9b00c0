# Warnings for every target of ours; -Werror when CREW_WERROR is on (CI).
function(crew_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow
        -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
        -Wno-unused-parameter)
    if(CREW_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
