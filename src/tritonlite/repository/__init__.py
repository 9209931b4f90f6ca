"""The model repository: folders on disk, config.pbtxt files and version policies."""
