#!/bin/sh
# Runs `certroll verify` from cron: appends the report to a log file, mails it when the
# exit code is not 0 (1 warning, 2 critical, 3 unknown, others: the command failed),
# and exits with certroll's own code so that the scheduler sees it.
#
# Environment (all optional):
#   CERTROLL               certroll binary            (default: certroll on PATH)
#   CERTROLL_INVENTORY     inventory file             (read by certroll itself)
#   CERTROLL_VERIFY_ARGS   extra arguments, e.g. "--live --warn-within 14d"
#   CERTROLL_VERIFY_LOG    log file                   (default: /var/log/certroll/verify.log)
#   CERTROLL_VERIFY_MAILTO where to mail reports      (default: root)
set -u

certroll=${CERTROLL:-certroll}
log=${CERTROLL_VERIFY_LOG:-/var/log/certroll/verify.log}
mailto=${CERTROLL_VERIFY_MAILTO:-root}
host=$(hostname 2>/dev/null || echo localhost)

mkdir -p "$(dirname "$log")" || exit 1
report=$(mktemp "${TMPDIR:-/tmp}/certroll-verify.XXXXXX") || exit 1
trap 'rm -f "$report"' EXIT

# NO_COLOR keeps escape codes out of the log and the mail.
# shellcheck disable=SC2086 # CERTROLL_VERIFY_ARGS is split on purpose.
NO_COLOR=1 "$certroll" verify ${CERTROLL_VERIFY_ARGS:-} >"$report" 2>&1
code=$?

{
    printf '=== %s certroll verify exit %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$code"
    cat "$report"
} >>"$log"

if [ "$code" -ne 0 ]; then
    case $code in
        1) level=WARNING ;;
        2) level=CRITICAL ;;
        3) level=UNKNOWN ;;
        *) level="FAILED (exit $code)" ;;
    esac
    subject="certroll verify on $host: $level"
    if command -v mail >/dev/null 2>&1; then
        mail -s "$subject" "$mailto" <"$report"
    elif command -v sendmail >/dev/null 2>&1; then
        {
            printf 'To: %s\nSubject: %s\n\n' "$mailto" "$subject"
            cat "$report"
        } | sendmail -t
    else
        printf '%s: neither mail nor sendmail found; report kept in %s\n' "$subject" "$log" >&2
    fi
fi

exit "$code"
