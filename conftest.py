"""Root conftest: pytest only honours ``pytest_plugins`` in the rootdir's conftest.

The Airbyte CDK's standard-test hooks parametrize ``TestBillStandardSuite`` (integration_tests/
test_standard_suite.py) with the scenarios of acceptance-test-config.yml and add its command-line
options (``--connector-image``, ``--read-from-streams``, ...). They only act on test classes that take a
``scenario`` argument, so other tests are unaffected.
"""

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
