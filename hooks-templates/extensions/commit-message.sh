#!/bin/sh
# A pre extension: refuse commits whose subject is not a Conventional Commit.
#
#   [[extension]]
#   name = "commit-message"
#   type = "script"
#   phase = "pre"
#   command = ["/usr/local/share/pushgate/hooks-templates/extensions/commit-message.sh"]
#
# The event arrives on stdin; the working directory is the repository and the quarantine
# variables are set, so `git` sees the commits being pushed. Exit 0 accepts, 75 means
# "try later" (on_error decides), anything else refuses and what we print reaches the pusher.
set -eu
pattern='^(feat|fix|docs|chore|refactor|test|perf|build|ci)(\([^)]+\))?!?: .+'
status=0
# Every 40/64-hex "id" of the commits listed in the event (head_commit repeats one: sort -u).
for id in $(grep -o '"id":"[0-9a-f]\{40,64\}"' | cut -d'"' -f4 | sort -u); do
    subject=$(git log -1 --format=%s "$id")
    if ! printf '%s\n' "$subject" | grep -Eq "$pattern"; then
        printf '%s: "%s" is not a Conventional Commit (e.g. "fix(api): handle empty body")\n' \
            "$(printf '%s' "$id" | cut -c1-7)" "$subject"
        status=1
    fi
done
exit "$status"
