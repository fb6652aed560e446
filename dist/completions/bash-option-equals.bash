
# Added by tools/package.sh (dist/completions/bash-option-equals.bash): bash splits
# `--log-format=` at the '=', and the function above then takes `=` for a subcommand and offers
# every option (and `help`) as the value. Here `--option=value` completes as `--option value`.
__COMMAND_FUNCTION___option_equals() {
    local -a words=()
    local -i cword=COMP_CWORD index
    for ((index = 0; index < ${#COMP_WORDS[@]}; index++)); do
        if [[ ${COMP_WORDS[index]} == "=" && index -gt 0 && ${COMP_WORDS[index - 1]} == --* ]]; then
            if ((index == COMP_CWORD)); then
                words+=("")          # the cursor is just after '=': an empty value so far
            elif ((index < COMP_CWORD)); then
                cword=cword-1
            fi
            continue
        fi
        words+=("${COMP_WORDS[index]}")
    done
    local -a COMP_WORDS=("${words[@]}")
    local COMP_CWORD=${cword}
    __COMMAND_FUNCTION__ "${1}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
}
complete -o filenames -F __COMMAND_FUNCTION___option_equals __COMMAND__
