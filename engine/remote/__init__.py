"""Everything that speaks to the Panel, as Wings has `remote/`: the client (typed errors naming the
URL and the Panel's `errors[].detail`), and what is built on it."""
