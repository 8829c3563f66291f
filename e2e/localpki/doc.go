// Package localpki writes a certificate authority made for one run and an agent certificate for
// 127.0.0.1 signed by it, as PEM files: what the bench's and the chaos suite's secured clusters
// (SASL_SSL, as docs/DEPLOY.md sets agents up) serve and trust. It is a tool of those two programs, not
// of the product: real clusters use certificates of their own CA (docs/DEPLOY.md). It imports nothing
// of StreamHouse.
package localpki
