#!/bin/sh
# ENTRYPOINT of the tritonlite images: runs tritonlite-server (as PID 1, through exec) with the
# container's arguments, in whichever of the usual forms they come:
#   docker run IMAGE                                    the CMD: --model-repository=/models
#   docker run IMAGE --model-repository=/m --log-verbose=1
#   docker run IMAGE tritonlite-server --model-repository=/m   (the command named first)
#   docker run IMAGE tritonserver --model-repository=/m        (Triton's name, for drop-in scripts)
#   docker run -it IMAGE bash                           any other command runs as given
set -e
case "${1:-}" in
  tritonlite-server | tritonserver)
    shift
    exec tritonlite-server "$@"
    ;;
  "" | -*)
    exec tritonlite-server "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
