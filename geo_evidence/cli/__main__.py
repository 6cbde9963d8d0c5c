from geo_evidence.cli import main

main()
