# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_spyglass_global_optspecs
    string join \n site= cgi= cgi-timeout= cgi-pass-authorization show-hidden list-dirs cache-control= listen= w/workers= idle-timeout= graceful-timeout= worker-timeout= log-target= log-level= access-log= control-socket= worker-max-requests= worker-max-lifetime= worker-max-memory= reload-on-change= max-request-line= max-head= max-headers= max-body= body-buffer= header-timeout= body-timeout= keepalive-timeout= write-timeout= max-requests= max-connections= proxy-protocol= trusted-proxy= proxy-headers= h/help V/version
end

function __fish_spyglass_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_spyglass_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_spyglass_using_subcommand
    set -l cmd (__fish_spyglass_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c spyglass -n "__fish_spyglass_needs_command" -l site -d 'Serve the socket NAME (FileDescriptorName=, or --listen NAME=ADDR) from its own ROOT (repeatable). Sockets no --site names are served from the positional ROOT; without one, each socket needs a --site' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l cgi -d 'Run CGI scripts from DIR for URLs under PREFIX, as in /cgi-bin=./cgi-bin (repeatable); NAME:PREFIX=DIR mounts them in the --site NAME only, else they serve ROOT\'s sockets' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l cgi-timeout -d 'Time a CGI script may run; then its process group is killed (504)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l cache-control -d 'Cache-Control header for static files, as in "max-age=3600"' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l listen -d 'Address to listen on when systemd passes no socket: HOST:PORT, `[::1]:PORT` or unix:/PATH (repeatable); NAME=ADDR names the socket, as FileDescriptorName= does (for --site, --proxy-protocol). A TCP address given N times gets N SO_REUSEPORT sockets, each polled by its own worker (at least N workers)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -s w -l workers -d 'Worker processes [default: the CPUs available]' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l idle-timeout -d 'Exit after this long without work (30s, 5min, 0 or infinity = never) [default: 60s when socket-activated, never otherwise]' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l graceful-timeout -d 'Time a graceful stop may take before what is left is killed' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l worker-timeout -d 'Replace a worker whose event loop has been stuck this long (0 = never)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l log-target -d 'Where logs go: journald when stderr is connected to it, else stderr' -r -f -a "auto\t'journald when stderr is connected to it, else stderr'
journald\t'The native journal protocol, with structured fields'
stderr\t'Text lines on stderr'"
complete -c spyglass -n "__fish_spyglass_needs_command" -l log-level -d 'The most verbose level logged' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Startup, stops, worker deaths and access events'
debug\t'More detail (worker boots, rejected requests)'
trace\t'Everything'"
complete -c spyglass -n "__fish_spyglass_needs_command" -l access-log -d 'One log event per request (on or off)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l control-socket -d 'The control socket for `spyglass ctl` [default: control.sock in $RUNTIME_DIRECTORY under systemd, none otherwise]' -r -F
complete -c spyglass -n "__fish_spyglass_needs_command" -l worker-max-requests -d 'Replace a worker, gracefully, after this many requests (plus up to a tenth, at random, so that workers do not all go at once)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l worker-max-lifetime -d 'Replace a worker, gracefully, after this long (plus up to a tenth)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l worker-max-memory -d 'Replace a worker, gracefully, once its resident memory exceeds this' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l reload-on-change -d 'Reload in place when this file or directory changes (repeatable), after it has been quiet for half a second' -r -F
complete -c spyglass -n "__fish_spyglass_needs_command" -l max-request-line -d 'Longest request line, else 414' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l max-head -d 'Largest request head, else 431' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l max-headers -d 'Most header fields in a request, else 431' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l max-body -d 'Largest request body, else 413' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l body-buffer -d 'Request bodies larger than this are kept in a temporary file, not in memory' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l header-timeout -d 'Time to receive a request head, else 408' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l body-timeout -d 'Longest silence while receiving a request body, else 408' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l keepalive-timeout -d 'How long an idle keep-alive connection stays open' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l write-timeout -d 'Drop a client that accepts no response bytes for this long' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l max-requests -d 'Requests served on one connection before it is closed (0 = no limit)' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l max-connections -d 'Most open connections per worker' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l proxy-protocol -d 'Expect a PROXY protocol header (v1 or v2) first on every connection to the socket NAME, or to all sockets (repeatable). Its address becomes the client\'s; a connection without a valid header within 5 s (or --header-timeout, if shorter) is closed unanswered. Only the proxy may be able to reach such a socket' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l trusted-proxy -d 'Believe this proxy\'s forwarding headers about the client (see --proxy-headers): an address, a CIDR range, or unix for the Unix socket\'s peers (repeatable). Walking the list from the right, the first address that is not a trusted proxy is the client. Applied after the PROXY header: the peer it names is the one checked' -r
complete -c spyglass -n "__fish_spyglass_needs_command" -l proxy-headers -d 'The headers trusted proxies maintain; the other kind is ignored, so that a client cannot pass its own through: x-forwarded (X-Forwarded-For and X-Forwarded-Proto) or forwarded (RFC 7239)' -r -f -a "x-forwarded\t'X-Forwarded-For and X-Forwarded-Proto (nginx, Caddy, HAProxy\'s option forwardfor)'
forwarded\t'Forwarded, RFC 7239 (HAProxy\'s option forwarded)'"
complete -c spyglass -n "__fish_spyglass_needs_command" -l cgi-pass-authorization -d 'Pass the Authorization header to CGI scripts (as HTTP_AUTHORIZATION)'
complete -c spyglass -n "__fish_spyglass_needs_command" -l show-hidden -d 'Serve files and directories whose names start with a dot'
complete -c spyglass -n "__fish_spyglass_needs_command" -l list-dirs -d 'List the contents of directories that have no index.html'
complete -c spyglass -n "__fish_spyglass_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spyglass -n "__fish_spyglass_needs_command" -s V -l version -d 'Print version'
complete -c spyglass -n "__fish_spyglass_needs_command" -a "check" -d 'Check the configuration as the service would load it (flags, SPYGLASS_* variables, ROOT and CGI directories opened), print it, and exit 0, or 78 with the reason'
complete -c spyglass -n "__fish_spyglass_needs_command" -a "ctl" -d 'Ask a running server (over its control socket) or tell it what to do; never starts one'
complete -c spyglass -n "__fish_spyglass_needs_command" -a "sites" -d 'The sites of the template units (spyglass@NAME.socket and .service), as systemd sees them: socket listening, awake or asleep, when each last woke and how many times. Starts nothing'
complete -c spyglass -n "__fish_spyglass_needs_command" -a "lookout" -d 'Hold the listening sockets without systemd: start the server on the first connection, and again after each idle exit'
complete -c spyglass -n "__fish_spyglass_needs_command" -a "completions" -d 'Print a completion script for SHELL to stdout'
complete -c spyglass -n "__fish_spyglass_needs_command" -a "man" -d 'Print a manual page (roff) to stdout: spyglass(1), or COMMAND\'s'
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l site -d 'Serve the socket NAME (FileDescriptorName=, or --listen NAME=ADDR) from its own ROOT (repeatable). Sockets no --site names are served from the positional ROOT; without one, each socket needs a --site' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l cgi -d 'Run CGI scripts from DIR for URLs under PREFIX, as in /cgi-bin=./cgi-bin (repeatable); NAME:PREFIX=DIR mounts them in the --site NAME only, else they serve ROOT\'s sockets' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l cgi-timeout -d 'Time a CGI script may run; then its process group is killed (504)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l cache-control -d 'Cache-Control header for static files, as in "max-age=3600"' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l listen -d 'Address to listen on when systemd passes no socket: HOST:PORT, `[::1]:PORT` or unix:/PATH (repeatable); NAME=ADDR names the socket, as FileDescriptorName= does (for --site, --proxy-protocol). A TCP address given N times gets N SO_REUSEPORT sockets, each polled by its own worker (at least N workers)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -s w -l workers -d 'Worker processes [default: the CPUs available]' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l idle-timeout -d 'Exit after this long without work (30s, 5min, 0 or infinity = never) [default: 60s when socket-activated, never otherwise]' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l graceful-timeout -d 'Time a graceful stop may take before what is left is killed' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l worker-timeout -d 'Replace a worker whose event loop has been stuck this long (0 = never)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l log-target -d 'Where logs go: journald when stderr is connected to it, else stderr' -r -f -a "auto\t'journald when stderr is connected to it, else stderr'
journald\t'The native journal protocol, with structured fields'
stderr\t'Text lines on stderr'"
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l log-level -d 'The most verbose level logged' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Startup, stops, worker deaths and access events'
debug\t'More detail (worker boots, rejected requests)'
trace\t'Everything'"
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l access-log -d 'One log event per request (on or off)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l control-socket -d 'The control socket for `spyglass ctl` [default: control.sock in $RUNTIME_DIRECTORY under systemd, none otherwise]' -r -F
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l worker-max-requests -d 'Replace a worker, gracefully, after this many requests (plus up to a tenth, at random, so that workers do not all go at once)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l worker-max-lifetime -d 'Replace a worker, gracefully, after this long (plus up to a tenth)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l worker-max-memory -d 'Replace a worker, gracefully, once its resident memory exceeds this' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l reload-on-change -d 'Reload in place when this file or directory changes (repeatable), after it has been quiet for half a second' -r -F
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l max-request-line -d 'Longest request line, else 414' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l max-head -d 'Largest request head, else 431' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l max-headers -d 'Most header fields in a request, else 431' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l max-body -d 'Largest request body, else 413' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l body-buffer -d 'Request bodies larger than this are kept in a temporary file, not in memory' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l header-timeout -d 'Time to receive a request head, else 408' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l body-timeout -d 'Longest silence while receiving a request body, else 408' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l keepalive-timeout -d 'How long an idle keep-alive connection stays open' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l write-timeout -d 'Drop a client that accepts no response bytes for this long' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l max-requests -d 'Requests served on one connection before it is closed (0 = no limit)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l max-connections -d 'Most open connections per worker' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l proxy-protocol -d 'Expect a PROXY protocol header (v1 or v2) first on every connection to the socket NAME, or to all sockets (repeatable). Its address becomes the client\'s; a connection without a valid header within 5 s (or --header-timeout, if shorter) is closed unanswered. Only the proxy may be able to reach such a socket' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l trusted-proxy -d 'Believe this proxy\'s forwarding headers about the client (see --proxy-headers): an address, a CIDR range, or unix for the Unix socket\'s peers (repeatable). Walking the list from the right, the first address that is not a trusted proxy is the client. Applied after the PROXY header: the peer it names is the one checked' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l proxy-headers -d 'The headers trusted proxies maintain; the other kind is ignored, so that a client cannot pass its own through: x-forwarded (X-Forwarded-For and X-Forwarded-Proto) or forwarded (RFC 7239)' -r -f -a "x-forwarded\t'X-Forwarded-For and X-Forwarded-Proto (nginx, Caddy, HAProxy\'s option forwardfor)'
forwarded\t'Forwarded, RFC 7239 (HAProxy\'s option forwarded)'"
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l cgi-pass-authorization -d 'Pass the Authorization header to CGI scripts (as HTTP_AUTHORIZATION)'
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l show-hidden -d 'Serve files and directories whose names start with a dot'
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -l list-dirs -d 'List the contents of directories that have no index.html'
complete -c spyglass -n "__fish_spyglass_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spyglass -n "__fish_spyglass_using_subcommand ctl" -l socket -d 'The server\'s control socket [default: /run/spyglass/default/control.sock, or /run/spyglass/SITE/control.sock with --site]' -r -F
complete -c spyglass -n "__fish_spyglass_using_subcommand ctl" -l site -d 'The site of a template unit (spyglass@SITE.service) to ask' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand ctl" -l json -d 'Print the answer as JSON'
complete -c spyglass -n "__fish_spyglass_using_subcommand ctl" -s h -l help -d 'Print help'
complete -c spyglass -n "__fish_spyglass_using_subcommand sites" -l json -d 'Print the sites as JSON'
complete -c spyglass -n "__fish_spyglass_using_subcommand sites" -s h -l help -d 'Print help'
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l pid-file -d 'Write the Lookout\'s pid to this file (atomically), remove it on exit; refuse to start while another live Lookout\'s pid is in it' -r -F
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l boot-timeout -d 'A server that has not reported READY=1 this long after its start is killed as hung' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l site -d 'Serve the socket NAME (FileDescriptorName=, or --listen NAME=ADDR) from its own ROOT (repeatable). Sockets no --site names are served from the positional ROOT; without one, each socket needs a --site' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l cgi -d 'Run CGI scripts from DIR for URLs under PREFIX, as in /cgi-bin=./cgi-bin (repeatable); NAME:PREFIX=DIR mounts them in the --site NAME only, else they serve ROOT\'s sockets' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l cgi-timeout -d 'Time a CGI script may run; then its process group is killed (504)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l cache-control -d 'Cache-Control header for static files, as in "max-age=3600"' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l listen -d 'Address to listen on when systemd passes no socket: HOST:PORT, `[::1]:PORT` or unix:/PATH (repeatable); NAME=ADDR names the socket, as FileDescriptorName= does (for --site, --proxy-protocol). A TCP address given N times gets N SO_REUSEPORT sockets, each polled by its own worker (at least N workers)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -s w -l workers -d 'Worker processes [default: the CPUs available]' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l idle-timeout -d 'Exit after this long without work (30s, 5min, 0 or infinity = never) [default: 60s when socket-activated, never otherwise]' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l graceful-timeout -d 'Time a graceful stop may take before what is left is killed' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l worker-timeout -d 'Replace a worker whose event loop has been stuck this long (0 = never)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l log-target -d 'Where logs go: journald when stderr is connected to it, else stderr' -r -f -a "auto\t'journald when stderr is connected to it, else stderr'
journald\t'The native journal protocol, with structured fields'
stderr\t'Text lines on stderr'"
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l log-level -d 'The most verbose level logged' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Startup, stops, worker deaths and access events'
debug\t'More detail (worker boots, rejected requests)'
trace\t'Everything'"
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l access-log -d 'One log event per request (on or off)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l control-socket -d 'The control socket for `spyglass ctl` [default: control.sock in $RUNTIME_DIRECTORY under systemd, none otherwise]' -r -F
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l worker-max-requests -d 'Replace a worker, gracefully, after this many requests (plus up to a tenth, at random, so that workers do not all go at once)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l worker-max-lifetime -d 'Replace a worker, gracefully, after this long (plus up to a tenth)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l worker-max-memory -d 'Replace a worker, gracefully, once its resident memory exceeds this' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l reload-on-change -d 'Reload in place when this file or directory changes (repeatable), after it has been quiet for half a second' -r -F
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l max-request-line -d 'Longest request line, else 414' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l max-head -d 'Largest request head, else 431' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l max-headers -d 'Most header fields in a request, else 431' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l max-body -d 'Largest request body, else 413' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l body-buffer -d 'Request bodies larger than this are kept in a temporary file, not in memory' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l header-timeout -d 'Time to receive a request head, else 408' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l body-timeout -d 'Longest silence while receiving a request body, else 408' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l keepalive-timeout -d 'How long an idle keep-alive connection stays open' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l write-timeout -d 'Drop a client that accepts no response bytes for this long' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l max-requests -d 'Requests served on one connection before it is closed (0 = no limit)' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l max-connections -d 'Most open connections per worker' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l proxy-protocol -d 'Expect a PROXY protocol header (v1 or v2) first on every connection to the socket NAME, or to all sockets (repeatable). Its address becomes the client\'s; a connection without a valid header within 5 s (or --header-timeout, if shorter) is closed unanswered. Only the proxy may be able to reach such a socket' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l trusted-proxy -d 'Believe this proxy\'s forwarding headers about the client (see --proxy-headers): an address, a CIDR range, or unix for the Unix socket\'s peers (repeatable). Walking the list from the right, the first address that is not a trusted proxy is the client. Applied after the PROXY header: the peer it names is the one checked' -r
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l proxy-headers -d 'The headers trusted proxies maintain; the other kind is ignored, so that a client cannot pass its own through: x-forwarded (X-Forwarded-For and X-Forwarded-Proto) or forwarded (RFC 7239)' -r -f -a "x-forwarded\t'X-Forwarded-For and X-Forwarded-Proto (nginx, Caddy, HAProxy\'s option forwardfor)'
forwarded\t'Forwarded, RFC 7239 (HAProxy\'s option forwarded)'"
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l cgi-pass-authorization -d 'Pass the Authorization header to CGI scripts (as HTTP_AUTHORIZATION)'
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l show-hidden -d 'Serve files and directories whose names start with a dot'
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -l list-dirs -d 'List the contents of directories that have no index.html'
complete -c spyglass -n "__fish_spyglass_using_subcommand lookout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spyglass -n "__fish_spyglass_using_subcommand completions" -s h -l help -d 'Print help'
complete -c spyglass -n "__fish_spyglass_using_subcommand man" -s h -l help -d 'Print help'
