"""The book machinery: cached experiment steps and prefetch, health checks, tables, figures and the runner.

This is the top layer: it may import everything below (`ferd.method`, `ferd.config`, `ferd.toolkit`), and
nothing in the library imports it. Modules are imported by name (`from ferd.book import tables`); importing the
package itself loads nothing.
"""
