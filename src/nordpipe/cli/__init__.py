"""nordpipe's command-line interface: a thin layer over the stage modules."""
