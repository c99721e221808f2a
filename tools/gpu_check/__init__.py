"""One GPU check (issue 28, section 5): every measurement and test that needs a CUDA GPU, in one command that ends
within a deadline (9 minutes), for a GPU machine that is lent for minutes at a time. See __main__.py."""
