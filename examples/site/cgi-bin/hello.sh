#!/bin/sh
# A CGI script (RFC 3875) in POSIX sh: the header block, a blank line, then
# the body, all on stdout. spyglass gives it the request in environment
# variables (QUERY_STRING, REQUEST_METHOD, ...) and the body on stdin.

# Anything from the request is escaped before it goes into HTML.
escape() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' \
        -e 's/"/\&quot;/g' -e "s/'/\&#39;/g"
}

printf 'Content-Type: text/html; charset=utf-8\r\n'
printf 'Cache-Control: no-store\r\n'
printf '\r\n'

cat <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello from CGI</title></head>
<body>
<h1>Hello from a CGI script</h1>
<p>The query string was: <code>$(escape "${QUERY_STRING}")</code></p>
<p>The time here is: <code>$(date '+%Y-%m-%d %H:%M:%S %Z')</code></p>
<p>Served by $(escape "${SERVER_SOFTWARE}") to $(escape "${REMOTE_ADDR}"),
as $(escape "${SCRIPT_NAME}") ($(escape "${REQUEST_METHOD}")).</p>
<p><a href="/">Back</a></p>
</body>
</html>
HTML
